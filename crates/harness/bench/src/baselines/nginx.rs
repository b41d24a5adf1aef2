//! nginx answering a fixed 200-byte body: the ceiling of an HTTP answer here.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use cacheme_testsupport::{free_port, port_open};

use cacheme_harness::http;

use crate::{common::write, procs::terminate};

/// nginx answering a fixed 200-byte body on a free loopback port.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    pub port: u16,
}

pub fn static_body() -> String {
    let head = r#"{"id":1,"source":"nginx","pad":""#;
    let tail = r#""}"#;
    format!("{head}{}{tail}", "x".repeat(200 - head.len() - tail.len()))
}

fn nginx_conf(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "worker_processes auto;\n\
         daemon off;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 keepalive_requests 1000000;\n\
         \x20 client_body_temp_path {d}/tmp/body;\n\
         \x20 proxy_temp_path {d}/tmp/proxy;\n\
         \x20 fastcgi_temp_path {d}/tmp/fastcgi;\n\
         \x20 uwsgi_temp_path {d}/tmp/uwsgi;\n\
         \x20 scgi_temp_path {d}/tmp/scgi;\n\
         \x20 server {{\n\
         \x20   listen 127.0.0.1:{port};\n\
         \x20   location / {{ default_type application/json; return 200 '{}'; }}\n\
         \x20 }}\n\
         }}\n",
        static_body()
    )
}

impl Nginx {
    pub fn start(nginx: &Path, dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        let port = free_port()?;
        let conf = dir.join("nginx.conf");
        write(&conf, &nginx_conf(dir, port))?;
        let mut child = Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start nginx")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !port_open(port) {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                bail!("nginx exited with {status}:\n{log}");
            }
            if Instant::now() > deadline {
                bail!("nginx did not listen on {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let (status, body) = http::request(port, "GET", "/", None)?;
        anyhow::ensure!(
            status == 200 && body.len() == 200,
            "nginx answered {status} with {} bytes",
            body.len()
        );
        Ok(Self { child, port })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_body_is_200_bytes_of_json() {
        let body = static_body();
        assert_eq!(body.len(), 200);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["source"], "nginx");
        let conf = nginx_conf(Path::new("/tmp/n"), 8081);
        assert!(conf.contains("listen 127.0.0.1:8081;"));
        assert!(conf.contains(&format!("return 200 '{body}';")));
        assert!(conf.contains("daemon off;"));
    }
}
