//! HTTP from the host to published ports, through curl (cookies and forms included,
//! which pgAdmin's login needs).

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// A request: method, URL, headers, body; cookies kept in `jar` when given.
#[derive(Debug, Default)]
pub struct Request<'a> {
    pub method: &'a str,
    pub url: String,
    pub headers: Vec<String>,
    pub body: Option<String>,
    pub form: Vec<(String, String)>,
    pub jar: Option<&'a Path>,
}

impl<'a> Request<'a> {
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            method: "GET",
            url: url.into(),
            ..Self::default()
        }
    }

    /// Keeps cookies in `jar` (read and written).
    pub fn with_jar(mut self, jar: &'a Path) -> Self {
        self.jar = Some(jar);
        self
    }

    pub fn header(mut self, header: impl Into<String>) -> Self {
        self.headers.push(header.into());
        self
    }

    /// Sends it once: the status and the body.
    pub fn send(&self) -> anyhow::Result<(u16, String)> {
        let mut cmd = Command::new("curl");
        cmd.args(["--silent", "--show-error", "--max-time", "10"])
            .args(["--request", self.method])
            .args(["--write-out", "\n%{http_code}"]);
        for h in &self.headers {
            cmd.arg("--header").arg(h);
        }
        if let Some(body) = &self.body {
            cmd.arg("--data-binary").arg(body);
        }
        for (k, v) in &self.form {
            cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
        }
        if let Some(jar) = self.jar {
            cmd.arg("--cookie").arg(jar).arg("--cookie-jar").arg(jar);
        }
        let out = cmd
            .arg(&self.url)
            .stdin(Stdio::null())
            .output()
            .context("cannot start curl (apt-get install curl)")?;
        if !out.status.success() {
            bail!(
                "{} {}: {}",
                self.method,
                self.url,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let (body, code) = text.rsplit_once('\n').context("curl printed no status")?;
        Ok((code.trim().parse()?, body.to_owned()))
    }

    /// Sends it until `accept` takes the answer or `timeout` passes; the last answer or
    /// error is in the failure.
    pub fn until(
        &self,
        timeout: Duration,
        accept: impl Fn(u16, &str) -> bool,
    ) -> anyhow::Result<(u16, String)> {
        let started = Instant::now();
        loop {
            let last = self.send();
            if let Ok((status, body)) = &last
                && accept(*status, body)
            {
                return Ok((*status, body.clone()));
            }
            if started.elapsed() > timeout {
                match last {
                    Ok((status, body)) => bail!(
                        "{} {}: still {status} after {timeout:?}: {}",
                        self.method,
                        self.url,
                        body.chars().take(300).collect::<String>()
                    ),
                    Err(e) => bail!("{e:#} (for {timeout:?})"),
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
