//! Shared by the `serve_*` tests: a scratch directory with the tiny test model
//! (a random-weight Llama from the synthetic builder, its SPM vocabulary and a
//! ChatML template) and a real `hearth serve` process on a free port.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use gguf::TensorType;
use model::synthetic::Spec;
use serde_json::Value;

const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + \
                      message['content'] + '<|im_end|>' + '\n'}}{% endfor %}\
                      {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A scratch directory: `tiny.gguf`, a `Modelfile` naming it, and the store
/// root `models/`.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("hearth-serve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = Spec::tiny_llama().build(&|_| TensorType::Q8_0).unwrap();
        w.add_str("tokenizer.chat_template", CHATML);
        w.write_file(dir.join("tiny.gguf")).unwrap();
        std::fs::write(dir.join("Modelfile"), "FROM ./tiny.gguf\n").unwrap();
        Scratch { dir }
    }

    pub fn models(&self) -> PathBuf {
        self.dir.join("models")
    }

    pub fn gguf(&self) -> PathBuf {
        self.dir.join("tiny.gguf")
    }

    /// Starts `hearth serve` on a free port with this store and `env`.
    pub fn serve(&self, env: &[(&str, &str)]) -> Server {
        Server::start(&self.models(), env, "HEARTH")
    }

    /// [`Scratch::serve`] with the address and the store given as Ollama's
    /// `OLLAMA_HOST` and `OLLAMA_MODELS` (no `HEARTH_*` variable set).
    pub fn serve_as_ollama(&self, env: &[(&str, &str)]) -> Server {
        Server::start(&self.models(), env, "OLLAMA")
    }

    /// Runs `hearth args` here against the server at `host` (or, with an
    /// unused port, standalone).
    pub fn hearth(&self, host: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(args)
            .current_dir(&self.dir)
            .env("HEARTH_MODELS", self.models())
            .env("HEARTH_HOST", host)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs `hearth args`, asserts success and returns stdout.
    pub fn ok(&self, host: &str, args: &[&str]) -> String {
        let out = self.hearth(host, args);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success(),
            "hearth {args:?}\nstdout: {stdout}\nstderr: {stderr}"
        );
        stdout
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Sends `signal` to `child` (no `kill` program needed: a minimal system
/// has none).
pub fn signal(child: &Child, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, signal).unwrap();
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `hearth serve`; killed when dropped.
pub struct Server {
    pub child: Child,
    pub host: String,
    pub http: reqwest::blocking::Client,
    /// `https` when the server was started with `HEARTH_TLS_CERT`.
    pub scheme: &'static str,
}

/// The test certificate authority that signed tests/fixtures/tls/server.pem.
pub const TEST_CA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/ca.pem");

impl Server {
    /// Starts the server with its address and store in `{prefix}_HOST` and
    /// `{prefix}_MODELS`.
    fn start(models: &Path, env: &[(&str, &str)], prefix: &str) -> Server {
        Server::start_wrapped(models, env, prefix, &[])
    }

    /// [`Server::start`] through `wrapper`, a command that ends by running
    /// its trailing arguments (`hearth serve`), such as `unshare … sh -c`.
    pub fn start_wrapped(
        models: &Path,
        env: &[(&str, &str)],
        prefix: &str,
        wrapper: &[&str],
    ) -> Server {
        Server::start_logged(models, env, prefix, wrapper, None)
    }

    /// [`Server::start_wrapped`] with the server's log (stderr) written to
    /// `log` when given.
    pub fn start_logged(
        models: &Path,
        env: &[(&str, &str)],
        prefix: &str,
        wrapper: &[&str],
        log: Option<&Path>,
    ) -> Server {
        let host = format!("127.0.0.1:{}", free_port());
        let hearth = env!("CARGO_BIN_EXE_hearth");
        let mut command = match wrapper.split_first() {
            None => Command::new(hearth),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(hearth);
                c
            }
        };
        command
            .arg("serve")
            .env_remove("HEARTH_HOST")
            .env_remove("HEARTH_MODELS")
            .env(format!("{prefix}_HOST"), &host)
            .env(format!("{prefix}_MODELS"), models)
            // No config file but the one a test asks for.
            .env("HEARTH_CONFIG", models.with_file_name("no-config.toml"))
            .env("HEARTH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(match log {
                Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
                None => Stdio::inherit(),
            });
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().unwrap();
        let tls = env.iter().any(|(k, _)| *k == "HEARTH_TLS_CERT");
        let mut http = reqwest::blocking::Client::builder().timeout(None::<Duration>);
        if tls {
            let ca = std::fs::read(TEST_CA).unwrap();
            http = http.add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap());
        }
        let http = http.build().unwrap();
        let scheme = if tls { "https" } else { "http" };
        let server = Server {
            child,
            host,
            http,
            scheme,
        };
        // Wait (bounded, so a broken server fails the test instead of hanging)
        // until it answers.
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.http.get(server.url("/api/version")).send().is_err() {
            assert!(
                Instant::now() < deadline,
                "hearth serve did not start on {}",
                server.host
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.host)
    }

    pub fn get(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    /// POSTs JSON; returns the status and the body as JSON.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self.http.post(self.url(path)).json(body).send().unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    /// POSTs JSON and reads the NDJSON answer to the end.
    pub fn post_stream(&self, path: &str, body: &Value) -> (u16, Vec<Value>) {
        let response = self.http.post(self.url(path)).json(body).send().unwrap();
        let status = response.status().as_u16();
        let lines = BufReader::new(response)
            .lines()
            .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
            .collect();
        (status, lines)
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        signal(&self.child, nix::sys::signal::Signal::SIGTERM);
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
