//! Parses trident's stdout into console blocks, strictly: every line must belong to a
//! four-line block (REQUEST, then RESPONSE primary, secondary, candidate, same id) or to a
//! summary (from a `SUMMARY ` line to its `VERDICT ` line, skipped here), so an interleaved
//! or stray line fails the test that reads it.

/// One exchange's block.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub id: u64,
    pub method: String,
    pub target: String,
    pub version: String,
    /// The `host=` value.
    pub host: String,
    /// The request's `body=` size in bytes.
    pub body: u64,
    /// `client left`: the client went away before its whole answer was out.
    pub client_left: bool,
    /// primary, secondary, candidate, in that order.
    pub legs: [Leg; 3],
    /// The four lines as printed.
    pub text: String,
}

impl Block {
    pub fn primary(&self) -> &Leg {
        &self.legs[0]
    }
    pub fn secondary(&self) -> &Leg {
        &self.legs[1]
    }
    pub fn candidate(&self) -> &Leg {
        &self.legs[2]
    }
}

/// One RESPONSE line.
#[derive(Debug, Clone, PartialEq)]
pub struct Leg {
    pub role: String,
    pub outcome: Outcome,
}

/// What a RESPONSE line says after `=>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response {
        status: u16,
        reason: String,
        body: u64,
        /// `body=12B cut`: a shadow's body cut short past the primary's.
        cut: bool,
        elapsed: String,
        /// `after 103`: the last interim status before the final response.
        interim: Option<u16>,
        /// The comparison result after the time (`same`, `differs: ...`), if any.
        compared: Option<String>,
    },
    /// `error: TEXT`.
    Error(String),
    /// Anything else (a skipped leg).
    Other(String),
}

impl Leg {
    /// `(status, body)` for a response line; panics otherwise.
    pub fn response(&self) -> (u16, u64) {
        match &self.outcome {
            Outcome::Response { status, body, .. } => (*status, *body),
            other => panic!("{} leg: expected a response, got {other:?}", self.role),
        }
    }

    /// Whether a response line's body was cut short (`body=NB cut`); panics if the line is
    /// not a response.
    pub fn cut(&self) -> bool {
        match &self.outcome {
            Outcome::Response { cut, .. } => *cut,
            other => panic!("{} leg: expected a response, got {other:?}", self.role),
        }
    }

    /// The `after 1xx` status of a response line; panics if the line is not a response.
    pub fn interim(&self) -> Option<u16> {
        match &self.outcome {
            Outcome::Response { interim, .. } => *interim,
            other => panic!("{} leg: expected a response, got {other:?}", self.role),
        }
    }

    /// The comparison result of a response line (`same`, `differs: ...`), if it has one;
    /// panics if the line is not a response.
    pub fn compared(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Response { compared, .. } => compared.as_deref(),
            other => panic!("{} leg: expected a response, got {other:?}", self.role),
        }
    }

    /// The leg's time in ms (`0.4ms`); panics if the line is not a response.
    pub fn elapsed_ms(&self) -> f64 {
        match &self.outcome {
            Outcome::Response { elapsed, .. } => elapsed
                .strip_suffix("ms")
                .and_then(|ms| ms.parse().ok())
                .unwrap_or_else(|| panic!("elapsed {elapsed:?}")),
            other => panic!("{} leg: expected a response, got {other:?}", self.role),
        }
    }

    /// The error text; panics if the line is not an error.
    pub fn error(&self) -> &str {
        match &self.outcome {
            Outcome::Error(text) => text,
            other => panic!("{} leg: expected an error, got {other:?}", self.role),
        }
    }
}

const ROLES: [&str; 3] = ["primary", "secondary", "candidate"];

/// Parses the complete lines of `out` into blocks. A trailing block with fewer than four lines
/// so far is left out (it is still being written); anything malformed is an error.
pub fn parse_blocks(out: &str) -> Result<Vec<Block>, String> {
    let complete = match out.rfind('\n') {
        Some(i) => &out[..=i],
        None => "",
    };
    let lines: Vec<&str> = complete.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].starts_with("SUMMARY ") {
            // A summary runs to its VERDICT line; one without it yet is still being written.
            match lines[i..].iter().position(|l| l.starts_with("VERDICT ")) {
                Some(end) => i += end + 1,
                None => break,
            }
            continue;
        }
        if lines.len() - i < 4 {
            // The rest must at least start right; it may be a block in progress.
            parse_request_line(lines[i])?;
            for (k, line) in lines[i + 1..].iter().enumerate() {
                parse_response_line(line, ROLES[k])?;
            }
            break;
        }
        blocks.push(parse_block(&lines[i..i + 4])?);
        i += 4;
    }
    Ok(blocks)
}

fn parse_block(lines: &[&str]) -> Result<Block, String> {
    let (id, method, target, version, host, body, client_left) = parse_request_line(lines[0])?;
    let mut legs = Vec::new();
    for (k, role) in ROLES.iter().enumerate() {
        let (leg_id, leg) = parse_response_line(lines[k + 1], role)?;
        if leg_id != id {
            return Err(format!(
                "block {id}: line {:?} belongs to request {leg_id} (interleaved blocks?)",
                lines[k + 1]
            ));
        }
        legs.push(leg);
    }
    let legs: [Leg; 3] = legs.try_into().map_err(|_| "three legs".to_string())?;
    Ok(Block {
        id,
        method,
        target,
        version,
        host,
        body,
        client_left,
        legs,
        text: lines.join("\n"),
    })
}

type RequestLine = (u64, String, String, String, String, u64, bool);

/// `REQUEST 1 => GET /hello HTTP/1.1 (host=localhost:8080, body=0B)`
fn parse_request_line(line: &str) -> Result<RequestLine, String> {
    let bad = |why: &str| format!("bad REQUEST line ({why}): {line:?}");
    let rest = line.strip_prefix("REQUEST ").ok_or_else(|| bad("prefix"))?;
    let (id, rest) = rest.split_once(" => ").ok_or_else(|| bad("no ' => '"))?;
    let id: u64 = id.parse().map_err(|_| bad("id"))?;
    let open = rest.rfind(" (").ok_or_else(|| bad("no '('"))?;
    let request = &rest[..open];
    let attrs = rest[open + 2..]
        .strip_suffix(')')
        .ok_or_else(|| bad("no ')'"))?;
    let mut parts = request.split(' ');
    let method = parts.next().ok_or_else(|| bad("method"))?.to_string();
    let target = parts.next().ok_or_else(|| bad("target"))?.to_string();
    let version = parts.next().ok_or_else(|| bad("version"))?.to_string();
    if parts.next().is_some() || !version.starts_with("HTTP/1.") {
        return Err(bad("request part"));
    }
    let mut host = None;
    let mut body = None;
    let mut client_left = false;
    for attr in attrs.split(", ") {
        if attr == "client left" {
            client_left = true;
            continue;
        }
        match attr.split_once('=') {
            Some(("host", v)) => host = Some(v.to_string()),
            Some(("body", v)) => body = Some(parse_size(v).ok_or_else(|| bad("body="))?),
            _ => return Err(bad("unknown attribute")),
        }
    }
    Ok((
        id,
        method,
        target,
        version,
        host.ok_or_else(|| bad("no host="))?,
        body.ok_or_else(|| bad("no body="))?,
        client_left,
    ))
}

/// `RESPONSE 1 primary => 200 OK (body=12B, 0.4ms)` or `... => error: connection refused`.
fn parse_response_line(line: &str, role: &str) -> Result<(u64, Leg), String> {
    let bad = |why: &str| format!("bad RESPONSE line for {role} ({why}): {line:?}");
    let rest = line
        .strip_prefix("RESPONSE ")
        .ok_or_else(|| bad("prefix"))?;
    let (id, rest) = rest.split_once(' ').ok_or_else(|| bad("id"))?;
    let id: u64 = id.parse().map_err(|_| bad("id"))?;
    let (got_role, what) = rest.split_once(" => ").ok_or_else(|| bad("no ' => '"))?;
    if got_role != role {
        return Err(bad(&format!("role {got_role:?} where {role} was due")));
    }
    let outcome = if let Some(err) = what.strip_prefix("error: ") {
        Outcome::Error(err.to_string())
    } else if what.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        let (status, rest) = what.split_once(' ').ok_or_else(|| bad("status"))?;
        let status: u16 = status.parse().map_err(|_| bad("status"))?;
        let open = rest.rfind('(').ok_or_else(|| bad("no '('"))?;
        let reason = rest[..open].trim_end().to_string();
        let attrs = rest[open + 1..]
            .strip_suffix(')')
            .ok_or_else(|| bad("no ')'"))?;
        let (body, rest) = attrs.split_once(", ").ok_or_else(|| bad("attributes"))?;
        let (elapsed, mut rest) = match rest.split_once(", ") {
            Some((elapsed, rest)) => (elapsed, Some(rest)),
            None => (rest, None),
        };
        let mut interim = None;
        if let Some(after) = rest.and_then(|r| r.strip_prefix("after ")) {
            let (status, more) = after
                .split_once(", ")
                .map_or((after, None), |(s, m)| (s, Some(m)));
            interim = Some(status.parse().map_err(|_| bad("after"))?);
            rest = more;
        }
        let compared = rest.map(str::to_string);
        let body = body.strip_prefix("body=").ok_or_else(|| bad("body="))?;
        let (body, cut) = match body.strip_suffix(" cut") {
            Some(size) => (size, true),
            None => (body, false),
        };
        let body = parse_size(body).ok_or_else(|| bad("body="))?;
        Outcome::Response {
            status,
            reason,
            body,
            cut,
            elapsed: elapsed.to_string(),
            interim,
            compared,
        }
    } else {
        Outcome::Other(what.to_string())
    };
    Ok((
        id,
        Leg {
            role: role.to_string(),
            outcome,
        },
    ))
}

/// `12B` -> 12.
fn parse_size(text: &str) -> Option<u64> {
    text.strip_suffix('B')?.parse().ok()
}
