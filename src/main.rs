fn main() {
    // being written
}
