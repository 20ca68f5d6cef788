//! The console contract on stdout: one four-line block per exchange, ids 1..n in arrival
//! order, primary/secondary/candidate lines in that order, request and response body sizes
//! after de-chunking, and nothing else on stdout, even with exchanges running concurrently.

mod support;

use std::time::Duration;

use support::*;

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn the_block_parser_reads_the_documented_example() {
    let out = "REQUEST 1 => GET /hello HTTP/1.1 (host=localhost:8080, body=0B)\n\
               RESPONSE 1 primary => 200 OK (body=12B, 0.4ms)\n\
               RESPONSE 1 secondary => 200 OK (body=12B, 0.5ms)\n\
               RESPONSE 1 candidate => error: connection refused\n\
               REQUEST 2 => POST /x HTTP/1.0 (host=a, body=3B)\n";
    let blocks = parse_blocks(out).expect("the documented example parses");
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].host, "localhost:8080");
    assert_eq!(blocks[0].primary().response(), (200, 12));
    assert_eq!(blocks[0].candidate().error(), "connection refused");
    let interleaved = "REQUEST 1 => GET / HTTP/1.1 (host=a, body=0B)\n\
                       RESPONSE 2 primary => 200 OK (body=1B, 1ms)\n\
                       RESPONSE 1 secondary => 200 OK (body=1B, 1ms)\n\
                       RESPONSE 1 candidate => 200 OK (body=1B, 1ms)\n";
    assert!(parse_blocks(interleaved).is_err());
    assert!(parse_blocks("hello\n").is_err());
}

/// Answers by target so that every leg's body size is known.
fn sized(req: &RecordedRequest) -> Reply {
    match req.target.as_str() {
        "/a" => Reply::ok("hello"),
        "/b" => Reply::ok(vec![b'b'; 1000]).chunked(&[10, 300]),
        "/c" => Reply::new(201, "Created"),
        "/d" => Reply::ok(vec![b'd'; 42]),
        "/e" => Reply::new(204, "No Content"),
        _ => Reply::new(404, "Not Found").body("no"),
    }
}

#[test]
fn blocks_have_sequential_ids_roles_in_order_and_the_right_sizes() {
    let (p, s, c) = three_serving(sized);
    let mut trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let host = [("Host", "console.test:8080")];
    // (method, target, request body, status, response body size), as the block must say.
    let chunked_body = pattern(1234, 5);
    let cases: [(&str, &str, &[u8], u16, u64); 6] = [
        ("GET", "/a", b"", 200, 5),
        ("POST", "/b", b"xyz", 200, 1000),
        ("PUT", "/c", &chunked_body, 201, 0),
        ("HEAD", "/d", b"", 200, 0),
        ("DELETE", "/e", b"", 204, 0),
        ("GET", "/nowhere", b"", 404, 2),
    ];
    let requests: Vec<_> = cases
        .iter()
        .map(|&(method, target, body, status, resp)| {
            let bytes = if method == "PUT" {
                chunked_request(method, target, &host, body, &[100, 7])
            } else {
                request(method, target, &host, body)
            };
            (bytes, method, target, body.len() as u64, status, resp)
        })
        .collect();
    let mut client = trident.client();
    for (bytes, ..) in &requests {
        client.exchange(bytes);
    }
    let mut blocks = trident.wait_blocks(requests.len(), WAIT);
    blocks.sort_by_key(|b| b.id);
    let ids: Vec<u64> = blocks.iter().map(|b| b.id).collect();
    assert_eq!(ids, (1..=requests.len() as u64).collect::<Vec<_>>());
    for (block, (_, method, target, req_body, status, resp_body)) in blocks.iter().zip(&requests) {
        assert_eq!(block.method, *method, "{}", block.text);
        assert_eq!(block.target, *target, "{}", block.text);
        assert_eq!(block.version, "HTTP/1.1", "{}", block.text);
        assert_eq!(block.host, "console.test:8080", "{}", block.text);
        assert_eq!(block.body, *req_body, "{}", block.text);
        let roles: Vec<&str> = block.legs.iter().map(|l| l.role.as_str()).collect();
        assert_eq!(roles, ["primary", "secondary", "candidate"]);
        for leg in &block.legs {
            assert_eq!(leg.response(), (*status, *resp_body), "{}", block.text);
        }
    }
    // After a clean exit stdout holds exactly these blocks, each line complete, then the
    // final summary (from its SUMMARY line to its VERDICT line).
    trident.signal("TERM");
    trident.wait_exit(WAIT);
    let out = trident.stdout();
    assert!(out.ends_with('\n'), "{out}");
    let summary = out.find("SUMMARY ").expect("a final summary");
    assert_eq!(out[..summary].lines().count(), 4 * requests.len(), "{out}");
    assert!(
        out[summary..]
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("VERDICT ")),
        "{out}"
    );
    assert_eq!(parse_blocks(&out).expect("blocks").len(), requests.len());
}

#[test]
fn concurrent_exchanges_never_interleave_lines_of_a_block() {
    let handler = |req: &RecordedRequest| Reply::ok(req.target.repeat(3));
    let (p, s, c) = three_serving(handler);
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let addr = trident.addr();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                for i in 0..8 {
                    let target = format!("/w{w}/r{i}");
                    let body = target.repeat(2);
                    let resp = client.exchange(&request(
                        "POST",
                        &target,
                        &[("Host", "c.test")],
                        body.as_bytes(),
                    ));
                    assert_eq!(resp.body_text(), target.repeat(3));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a client thread failed");
    }
    // `blocks()` fails on any interleaved or stray line.
    let mut blocks = trident.wait_blocks(32, WAIT);
    blocks.sort_by_key(|b| b.id);
    let ids: Vec<u64> = blocks.iter().map(|b| b.id).collect();
    assert_eq!(ids, (1..=32).collect::<Vec<_>>());
    for block in &blocks {
        let n = block.target.len() as u64;
        assert_eq!(block.body, 2 * n, "{}", block.text);
        for leg in &block.legs {
            assert_eq!(leg.response(), (200, 3 * n), "{}", block.text);
        }
    }
}

#[test]
fn ids_follow_arrival_order_on_one_connection() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    for i in 1..=10 {
        client.exchange(&get(&format!("/n/{i}")));
    }
    let blocks = trident.wait_blocks(10, WAIT);
    for block in &blocks {
        assert_eq!(block.target, format!("/n/{}", block.id), "{}", block.text);
    }
}
