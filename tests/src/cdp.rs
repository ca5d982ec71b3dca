//! A minimal Chrome DevTools Protocol client for testing pages in real headless Chromium:
//! launch, navigate, evaluate JavaScript, wait for a condition. Blocking (one websocket).

use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A headless Chromium with one page.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

/// The Chromium binary: `$CHROMIUM`, else the first of the usual names on `PATH`.
pub fn chromium_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
    .find(|p| p.is_file())
}

impl Browser {
    /// Launches Chromium headless with a phone-sized window and opens `url`.
    pub fn launch(url: &str) -> Result<Self, String> {
        Self::launch_sized(url, 390, 844)
    }

    /// Launches Chromium headless with a window of this size (its own process and profile,
    /// so two of them are two independent browsers) and opens `url`.
    pub fn launch_sized(url: &str, width: u32, height: u32) -> Result<Self, String> {
        let bin = chromium_binary()
            .ok_or("no Chromium found (install Debian `chromium`, or set CHROMIUM)")?;
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        // Chromium writes its port to DevToolsActivePort once it listens.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Ok(s) = std::fs::read_to_string(&port_file) {
                if let Some(p) = s.lines().next().and_then(|l| l.trim().parse::<u16>().ok()) {
                    break p;
                }
            }
            if Instant::now() > deadline {
                return Err("Chromium did not open its DevTools port within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let list: Vec<Value> = reqwest::blocking::get(format!("http://127.0.0.1:{port}/json/list"))
            .and_then(|r| r.json())
            .map_err(|e| format!("DevTools target list: {e}"))?;
        let ws_url = list
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .ok_or("no page target")?
            .to_string();
        let (ws, _) = tungstenite::connect(ws_url).map_err(|e| format!("DevTools socket: {e}"))?;
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(60)))
                .map_err(|e| e.to_string())?;
        }
        let mut b = Self {
            child,
            _profile: profile,
            ws,
            next_id: 1,
        };
        b.call("Page.enable", json!({}))?;
        b.call("Page.navigate", json!({ "url": url }))?;
        b.wait_for(
            "document.readyState === 'complete'",
            Duration::from_secs(30),
        )?;
        Ok(b)
    }

    /// Sends a command and returns its result (events arriving meanwhile are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws
            .send(Message::Text(msg))
            .map_err(|e| format!("{method}: {e}"))?;
        loop {
            let m = match self.ws.read() {
                Ok(m) => m,
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                    return Err(format!("{method}: no answer"))
                }
                Err(e) => return Err(format!("{method}: {e}")),
            };
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
            if v["id"] == id {
                if let Some(err) = v.get("error") {
                    return Err(format!("{method}: {err}"));
                }
                return Ok(v["result"].clone());
            }
        }
    }

    /// Evaluates JavaScript in the page (promises awaited) and returns its value.
    pub fn eval(&mut self, expr: &str) -> Result<Value, String> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(ex) = r.get("exceptionDetails") {
            return Err(format!("{expr}: {ex}"));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Polls `expr` until it is truthy; returns its value.
    pub fn wait_for(&mut self, expr: &str, timeout: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.eval(expr)?;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return Ok(v);
            }
            if Instant::now() > deadline {
                return Err(format!("timed out waiting for: {expr}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Browser {
    /// Audits what is on the page now for the WCAG 2.1 AA points a test can check: the text
    /// contrast of every visible element holding text (4.5:1, or 3:1 for large text — at
    /// least 24 px, or 18.66 px bold; placeholders included; disabled controls exempt), with
    /// the background found by compositing the ancestors' background colours, and a name for
    /// screen readers on every control (button, field, link, `role=button`): its text,
    /// `aria-label`, `aria-labelledby`, a `<label>` or `title` — a placeholder alone is not one.
    /// Returns one line per problem; empty when the page passes.
    pub fn accessibility_problems(&mut self) -> Result<Vec<String>, String> {
        let v = self.eval(A11Y_AUDIT)?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }
}

const A11Y_AUDIT: &str = r#"(() => {
  const parse = c => {
    const m = /rgba?\(([^)]+)\)/.exec(c || '');
    if (!m) return null;
    const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(parseFloat);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const over = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a), a: 1 });
  const lum = c => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const background = el => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let bg = { r: 255, g: 255, b: 255, a: 1 };
    for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  };
  const ratio = (fg, bg) => {
    const a = lum(over(fg, bg)), b = lum(bg);
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  };
  const visible = el => {
    const s = getComputedStyle(el);
    if (s.visibility !== 'visible' || s.display === 'none' || parseFloat(s.opacity) === 0) return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const name = el => el.tagName.toLowerCase() + (el.className && typeof el.className === 'string'
    ? '.' + el.className.trim().split(/\s+/).join('.') : '');
  const out = [];
  const check = (el, color, what) => {
    const s = getComputedStyle(el);
    const px = parseFloat(s.fontSize), bold = parseInt(s.fontWeight, 10) >= 700;
    const need = (px >= 24 || (px >= 18.66 && bold)) ? 3 : 4.5;
    const fg = parse(color);
    if (!fg) return;
    const r = ratio(fg, background(el));
    if (r < need) out.push(`contrast ${r.toFixed(2)} < ${need} (${what} ${color} on ${JSON.stringify(background(el))}) at ${name(el)}`);
  };
  for (const el of document.querySelectorAll('body *')) {
    if (!visible(el) || el.disabled) continue;
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (own) check(el, getComputedStyle(el).color, 'text');
    if ((el.tagName === 'INPUT' || el.tagName === 'TEXTAREA') && el.placeholder && !el.value)
      check(el, getComputedStyle(el, '::placeholder').color, 'placeholder');
  }
  const controls = 'button, input:not([type=hidden]), textarea, select, a[href], [role=button], [role=checkbox], [role=switch]';
  for (const el of document.querySelectorAll(controls)) {
    if (!visible(el)) continue;
    const by = (el.getAttribute('aria-labelledby') || '').split(/\s+/)
      .map(id => document.getElementById(id)).filter(Boolean).map(e => e.textContent).join('');
    const label = el.labels && [...el.labels].map(l => l.textContent).join('');
    const text = ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName) ? '' : el.textContent;
    const n = [el.getAttribute('aria-label'), by, label, el.getAttribute('title'), text]
      .map(x => (x || '').trim()).find(Boolean);
    if (!n) out.push(`no accessible name: ${name(el)}`);
  }
  return out;
})()"#;

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
