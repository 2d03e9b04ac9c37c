//! The harness of the hostile-input catalogue: a temporary home with one good backbone and one good dataset in
//! it, the real `ferrotune` binary run against it, and [`Lab::refuses`], which checks what a refusal must be.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use ferrotune_test_support::{copy_dir, model_fixture, write_file, TempHome};

/// No command of the catalogue takes longer (they take well under a second each); a hang fails the case.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Words that only a crash or a leaked internal error prints.
const FORBIDDEN: [&str; 4] = ["panicked", "backtrace", "unwrap", "RUST_BACKTRACE"];

/// A home for one area's cases: backbone `tiny` (the `llama3_rope` fixture) registered and dataset `good`
/// imported, so that every refusal can be checked to leave them as they were.
pub struct Lab {
    dir: TempHome,
    server: OnceLock<Server>,
}

impl Lab {
    pub fn new() -> Lab {
        let lab = Lab {
            dir: TempHome::new(),
            server: OnceLock::new(),
        };
        let tiny = model_fixture("llama3_rope");
        lab.succeeds(&["backbone", "register", &s(&tiny), "--name", "tiny"]);
        let good = lab.file(
            "good.csv",
            "prompt,answer\nwhat is 1+1?,2\nwhat is 2+2?,4\n",
        );
        lab.succeeds(&["dataset", "import", &good, "--name", "good"]);
        lab
    }

    /// The home (`FERROTUNE_HOME` of every command).
    pub fn home(&self) -> PathBuf {
        self.dir.home().root().to_path_buf()
    }

    /// The folder beside the home where cases write their inputs (each under its own names).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// A scratch path (not created).
    pub fn path(&self, name: &str) -> PathBuf {
        self.scratch().join(name)
    }

    /// Writes `content` to the scratch file `name` and returns its path.
    pub fn file(&self, name: &str, content: impl AsRef<[u8]>) -> String {
        s(&write_file(self.scratch(), name, content))
    }

    /// A copy of the model fixture `case` at the scratch folder `name`, for a case to break.
    pub fn model_copy(&self, case: &str, name: &str) -> PathBuf {
        let to = self.path(name);
        copy_dir(&model_fixture(case), &to);
        to
    }

    /// `ferrotune ARGS` in this home, run in the scratch folder, without an access token from the environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrotune"));
        cmd.args(args)
            .current_dir(self.scratch())
            .env("FERROTUNE_HOME", self.home())
            .env_remove("FERROTUNE_TOKEN")
            .env_remove("RUST_BACKTRACE");
        cmd
    }

    /// Runs `ferrotune ARGS` with `stdin` as its input (closed at once when empty), failing after [`TIMEOUT`].
    pub fn run_with_input(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(stdin);
        drop(input);
        // Read both pipes on threads so that a chatty child never blocks on a full pipe.
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let out = std::thread::spawn(move || read_all(&mut out));
        let err = std::thread::spawn(move || read_all(&mut err));
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`ferrotune {}` did not end within {TIMEOUT:?}",
                    args.join(" ")
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Output {
            status,
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_input(args, b"")
    }

    /// Runs and expects success, printed cleanly; returns the output.
    pub fn succeeds(&self, args: &[&str]) -> Output {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "`ferrotune {}` failed:\n{}",
            args.join(" "),
            stderr(&o)
        );
        assert_clean(&o, args);
        o
    }

    /// Runs `ferrotune ARGS` and checks a refusal: a non-zero exit; each of `needles` (case-insensitive) in
    /// what it printed (stderr, and stdout, where `config validate` reports); none of [`FORBIDDEN`]; no line of
    /// stderr said twice; and the home exactly as it was (see [`Snapshot`]). Returns the output.
    pub fn refuses(&self, args: &[&str], needles: &[&str]) -> Output {
        let before = Snapshot::of(&self.home());
        let o = self.run(args);
        let after = Snapshot::of(&self.home());
        let shown = format!("`ferrotune {}`", args.join(" "));
        assert!(
            !o.status.success(),
            "{shown} should fail, but succeeded:\n{}{}",
            stdout(&o),
            stderr(&o)
        );
        assert_clean(&o, args);
        assert_mentions(&printed(&o), needles, &shown);
        before.assert_same(&after, &shown);
        o
    }

    /// The studio of this home (`ferrotune serve --port 0 --no-demo`), started on first use and stopped with
    /// the lab.
    pub fn server(&self) -> &Server {
        self.server.get_or_init(|| Server::start(self))
    }
}

/// Everything a command printed: stderr, then stdout.
pub fn printed(o: &Output) -> String {
    format!("{}{}", stderr(o), stdout(o))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A path as a command-line argument.
pub fn s(path: &Path) -> String {
    path.to_str().expect("a UTF-8 path").to_string()
}

/// Fails unless every needle is in `text` (ignoring case).
pub fn assert_mentions(text: &str, needles: &[&str], what: &str) {
    let lower = text.to_lowercase();
    let missing: Vec<&&str> = needles
        .iter()
        .filter(|n| !lower.contains(&n.to_lowercase()))
        .collect();
    assert!(
        missing.is_empty(),
        "{what} does not say {missing:?}; it printed:\n{text}"
    );
}

/// No crash words, and no line of stderr said twice.
pub fn assert_clean(o: &Output, args: &[&str]) {
    let text = printed(o);
    for word in FORBIDDEN {
        assert!(
            !text.contains(word),
            "`ferrotune {}` printed `{word}`:\n{text}",
            args.join(" ")
        );
    }
    let err = stderr(o);
    let mut seen = std::collections::HashSet::new();
    for line in err.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            seen.insert(line),
            "`ferrotune {}` printed this line twice: {line:?}\n{err}",
            args.join(" ")
        );
    }
}

fn read_all(r: &mut impl Read) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = r.read_to_end(&mut buf);
    buf
}

/// The files of a home: relative path → (size, modification time). Folders are left out (an empty folder is
/// nothing registered), and so are what the home documents as changing on its own (docs/home.md): the lock
/// folder `datasets/.locks`, SQLite's `-wal`/`-shm` journals and the `*.log` files.
#[derive(Debug, PartialEq)]
pub struct Snapshot(BTreeMap<String, (u64, SystemTime)>);

impl Snapshot {
    pub fn of(root: &Path) -> Snapshot {
        let mut files = BTreeMap::new();
        walk(root, root, &mut files);
        Snapshot(files)
    }

    /// Fails listing every file added, removed or changed.
    pub fn assert_same(&self, after: &Snapshot, what: &str) {
        let mut changes = Vec::new();
        for (path, meta) in &self.0 {
            match after.0.get(path) {
                None => changes.push(format!("removed {path}")),
                Some(m) if m != meta => changes.push(format!("changed {path}")),
                Some(_) => {}
            }
        }
        for path in after.0.keys().filter(|p| !self.0.contains_key(*p)) {
            changes.push(format!("added {path}"));
        }
        assert!(
            changes.is_empty(),
            "{what} changed the home: {}",
            changes.join(", ")
        );
    }
}

fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, (u64, SystemTime)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if name != ".locks" {
                walk(root, &path, files);
            }
            continue;
        }
        if name.ends_with(".log") || name.ends_with("-wal") || name.ends_with("-shm") {
            continue;
        }
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        files.insert(rel, (meta.len(), meta.modified().unwrap()));
    }
}

/// `ferrotune serve` on a free loopback port, killed when dropped.
pub struct Server {
    child: std::process::Child,
    pub addr: String,
}

impl Server {
    fn start(lab: &Lab) -> Server {
        let mut child = lab
            .command(&["serve", "--port", "0", "--no-demo"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary runs");
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        // "ferrotune studio listening on http://127.0.0.1:PORT"
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(
            addr.starts_with("127.0.0.1:"),
            "the server printed {line:?}"
        );
        Server { child, addr }
    }

    /// Sends one raw HTTP/1.1 request (`Connection: close`) and reads the whole answer.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut stream = std::net::TcpStream::connect(&self.addr).expect("the server accepts");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        // A server may answer (413, 415) before reading the whole body and close; what it said still counts.
        let _ = stream.write_all(body);
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        Reply::parse(&raw, &format!("{method} {path}"))
    }

    /// A JSON request of a script (no cookie, no `Origin`: allowed on loopback without a token).
    pub fn json(&self, method: &str, path: &str, body: &str) -> Reply {
        self.request(
            method,
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    what: String,
}

impl Reply {
    fn parse(raw: &[u8], what: &str) -> Reply {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| {
                panic!("{what}: no HTTP answer: {:?}", String::from_utf8_lossy(raw))
            });
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let body = &raw[split + 4..];
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("{what}: no status line: {head:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_vec()
        };
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            what: what.to_string(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Checks an API error: this status, a JSON body `{"error": "…"}` whose message has every needle.
    pub fn is_api_error(&self, status: u16, needles: &[&str]) {
        let what = &self.what;
        assert_eq!(self.status, status, "{what}: {}", self.body);
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{what}: not JSON: {:?} {}",
            self.header("content-type"),
            self.body
        );
        let json: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{what}: the body is not JSON ({e}): {}", self.body));
        let message = json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no `error` in {json}"));
        for word in FORBIDDEN {
            assert!(!message.contains(word), "{what}: {message}");
        }
        assert_mentions(message, needles, what);
    }
}

/// The body of a `Transfer-Encoding: chunked` answer.
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..end]).into_owned();
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let tail = &rest[end + 2..];
        if n == 0 || tail.len() < n {
            break;
        }
        body.extend_from_slice(&tail[..n]);
        rest = tail[n..].strip_prefix(b"\r\n").unwrap_or(&tail[n..]);
    }
    body
}
