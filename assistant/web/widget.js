/*
 * 乐业助手 web chat widget. Include it on any page:
 *   <script src="https://HOST/widget.js"></script>
 * With an element #leye-chat on the page the chat fills it; otherwise a 💬 button opens it as
 * a panel. Answers stream over POST /api/v1/chat/stream (server-sent events read from fetch).
 * The session id is kept in localStorage so a reload continues the conversation. After a
 * network drop the widget reconnects with backoff and restores the answer from the transcript
 * instead of sending the question twice.
 */
(function () {
  "use strict";
  if (window.__leyeWidget) return;
  window.__leyeWidget = true;
  var script = document.currentScript;
  var base = script && script.src ? new URL(script.src, location.href).origin : location.origin;
  var KEY = "leye_session_id";

  var css = [
    ".leye{display:flex;flex-direction:column;height:100%;background:#fff;font-size:15px;color:#1f2329;box-sizing:border-box}",
    ".leye *{box-sizing:border-box}",
    ".leye-log{flex:1;overflow-y:auto;padding:12px;-webkit-overflow-scrolling:touch}",
    ".leye-msg{max-width:86%;margin:8px 0;padding:9px 12px;border-radius:12px;line-height:1.6;white-space:pre-wrap;word-break:break-word}",
    ".leye-user{margin-left:auto;background:#c8102e;color:#fff;border-bottom-right-radius:4px}",
    ".leye-bot{background:#f1f3f6;border-bottom-left-radius:4px}",
    ".leye-sys{margin:8px auto;background:#fff7e6;color:#8a5a00;font-size:13px;text-align:center;max-width:95%}",
    ".leye-cites{margin-top:6px;font-size:13px;color:#555}",
    ".leye-cites summary{cursor:pointer;color:#1d4ed8}",
    ".leye-cites li{margin:4px 0}",
    ".leye-quote{color:#666;display:block}",
    ".leye-job{border:1px solid #e5e7eb;border-radius:10px;padding:8px 10px;margin-top:6px;background:#fff;font-size:13px}",
    ".leye-job b{font-size:14px}",
    ".leye-job .leye-alt{color:#b45309}",
    ".leye-fb{margin-top:4px}",
    ".leye-fb button{border:none;background:none;font-size:16px;cursor:pointer;padding:2px 6px}",
    ".leye-fb button[disabled]{opacity:.4}",
    ".leye-bar{display:flex;gap:6px;padding:8px;border-top:1px solid #e5e7eb;padding-bottom:calc(8px + env(safe-area-inset-bottom))}",
    ".leye-bar input{flex:1;min-width:0;font-size:16px;padding:9px 10px;border:1px solid #d0d5dd;border-radius:8px}",
    ".leye-bar button{font-size:15px;padding:0 12px;border-radius:8px;border:1px solid #c8102e;background:#c8102e;color:#fff}",
    ".leye-bar .leye-human{background:#fff;color:#c8102e}",
    ".leye-status{font-size:12px;color:#b45309;text-align:center;min-height:0}",
    ".leye-fab{position:fixed;right:16px;bottom:16px;width:56px;height:56px;border-radius:50%;border:none;background:#c8102e;color:#fff;font-size:26px;box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:2147483000}",
    ".leye-panel{position:fixed;right:16px;bottom:84px;width:min(380px,calc(100vw - 32px));height:min(620px,calc(100vh - 110px));border-radius:14px;overflow:hidden;box-shadow:0 8px 30px rgba(0,0,0,.25);z-index:2147483000;display:none}",
    "@media (max-width:480px){.leye-panel{right:0;bottom:0;width:100vw;height:100vh;border-radius:0}}"
  ].join("\n");
  var style = document.createElement("style");
  style.textContent = css;
  document.head.appendChild(style);

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  var host = document.getElementById("leye-chat");
  if (!host) {
    var fab = el("button", "leye-fab", "💬");
    fab.setAttribute("aria-label", "打开乐业助手");
    host = el("div", "leye-panel");
    fab.onclick = function () { host.style.display = host.style.display === "block" ? "none" : "block"; };
    document.body.appendChild(host);
    document.body.appendChild(fab);
  }
  var root = el("div", "leye");
  var log = el("div", "leye-log");
  log.setAttribute("aria-live", "polite");
  var status = el("div", "leye-status");
  var bar = el("form", "leye-bar");
  var input = el("input");
  input.placeholder = "请输入您的问题，如：高校毕业生有哪些补贴？";
  input.maxLength = 2000;
  input.setAttribute("enterkeyhint", "send");
  var send = el("button", "leye-send", "发送");
  send.type = "submit";
  var human = el("button", "leye-human", "转人工");
  human.type = "button";
  bar.appendChild(input); bar.appendChild(send); bar.appendChild(human);
  root.appendChild(log); root.appendChild(status); root.appendChild(bar);
  host.appendChild(root);

  var sessionId = null;
  try { sessionId = localStorage.getItem(KEY); } catch (e) { /* private mode */ }
  function setSession(id) {
    sessionId = id;
    try { localStorage.setItem(KEY, id); } catch (e) { /* ignore */ }
  }
  function scroll() { log.scrollTop = log.scrollHeight; }
  function say(cls, text) { var m = el("div", "leye-msg " + cls, text); log.appendChild(m); scroll(); return m; }
  function sys(text) { return say("leye-sys", text); }

  say("leye-bot", "您好！我是乐业助手，可以为您解答就业创业政策、查找招聘岗位，也可以转接人工职业指导师。");

  function renderCitations(bubble, cites) {
    if (!cites || !cites.length) return;
    var d = el("details", "leye-cites");
    d.appendChild(el("summary", null, "来源（" + cites.length + "）"));
    var ol = el("ol");
    cites.forEach(function (c) {
      var li = el("li");
      var head = "[" + c.n + "] 《" + c.title + "》" + (c.doc_number ? " " + c.doc_number : "") + (c.section ? " · " + c.section : "");
      li.appendChild(el("span", "leye-cite-title", head));
      li.appendChild(el("span", "leye-quote", "“" + c.quote + "”"));
      ol.appendChild(li);
    });
    d.appendChild(ol);
    bubble.appendChild(d);
  }

  function renderJobs(bubble, jobs, relaxed) {
    if (!jobs || !jobs.length) return;
    jobs.forEach(function (j) {
      var card = el("div", "leye-job");
      card.appendChild(el("b", null, j.title));
      card.appendChild(el("div", null, j.company + " · " + j.city + (j.district ? j.district : "")));
      card.appendChild(el("div", null, j.salary + " · " + j.employment_type));
      card.appendChild(el("div", null, "联系：" + j.contact + " · 截止 " + j.expires_at));
      if (!j.exact_match) card.appendChild(el("div", "leye-alt", "放宽条件的结果" + (relaxed ? "（" + relaxed + "）" : "")));
      bubble.appendChild(card);
    });
  }

  function renderFeedback(bubble, turnId) {
    if (!turnId) return;
    var fb = el("div", "leye-fb");
    [["👍", "up"], ["👎", "down"]].forEach(function (p) {
      var b = el("button", "leye-" + p[1], p[0]);
      b.type = "button";
      b.setAttribute("aria-label", p[1] === "up" ? "有帮助" : "没帮助");
      b.onclick = function () {
        fetch(base + "/api/v1/sessions/" + sessionId + "/feedback", {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ turn_id: turnId, rating: p[1] })
        }).then(function (r) {
          if (r.ok) { fb.querySelectorAll("button").forEach(function (x) { x.disabled = true; }); sys("感谢您的反馈"); }
        }).catch(function () { sys("反馈发送失败，请稍后再试"); });
      };
      fb.appendChild(b);
    });
    bubble.appendChild(fb);
  }

  function handleEvent(name, data, ctx) {
    if (name === "meta") { setSession(data.session_id); ctx.turnId = data.turn_id; }
    else if (name === "token") { ctx.text.textContent += data.text; scroll(); }
    else if (name === "citations") renderCitations(ctx.bubble, data.citations);
    else if (name === "jobs") renderJobs(ctx.bubble, data.jobs, data.relaxed);
    else if (name === "handoff") sys("已转人工，当前排队第" + data.position + "位");
    else if (name === "done") { ctx.done = true; renderFeedback(ctx.bubble, ctx.turnId); }
    else if (name === "error") { ctx.done = true; sys(data.message || "服务暂时不可用"); }
    scroll();
  }

  // Reads an SSE body from fetch: blocks separated by a blank line, "event:" and "data:" lines.
  function readSse(resp, ctx) {
    var reader = resp.body.getReader();
    var decoder = new TextDecoder();
    var buf = "";
    function pump() {
      return reader.read().then(function (r) {
        if (r.done) return;
        buf += decoder.decode(r.value, { stream: true });
        var idx;
        while ((idx = buf.indexOf("\n\n")) >= 0) {
          var block = buf.slice(0, idx); buf = buf.slice(idx + 2);
          var name = "message", data = "";
          block.split("\n").forEach(function (line) {
            if (line.indexOf("event:") === 0) name = line.slice(6).trim();
            else if (line.indexOf("data:") === 0) data += line.slice(5).replace(/^ /, "");
          });
          if (data) { try { handleEvent(name, JSON.parse(data), ctx); } catch (e) { /* keep reading */ } }
        }
        return pump();
      });
    }
    return pump();
  }

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  // After a drop: wait for the server, then take the answer from the stored transcript.
  function recover(question, ctx, attempt) {
    var wait = Math.min(1000 * Math.pow(2, attempt), 15000);
    status.textContent = "网络中断，正在重新连接…";
    return sleep(wait).then(function () {
      if (!sessionId) return send_(question, ctx, attempt + 1);
      return fetch(base + "/api/v1/sessions/" + sessionId).then(function (r) {
        if (!r.ok) throw new Error("status " + r.status);
        return r.json();
      }).then(function (t) {
        status.textContent = "";
        var msgs = t.messages || [];
        var qi = -1;
        for (var i = msgs.length - 1; i >= 0; i--) { if (msgs[i].role === "user") { qi = i; break; } }
        if (qi < 0 || msgs[qi].text.indexOf(question.slice(0, 10)) < 0 && ctx.turnId == null) {
          return send_(question, ctx, attempt + 1); // the question never arrived: send it again
        }
        var ans = msgs[qi + 1];
        if (ans && ans.status !== "pending") {
          ctx.text.textContent = ans.text;
          renderCitations(ctx.bubble, ans.citations);
          renderJobs(ctx.bubble, ans.jobs);
          if (ans.status === "incomplete") sys("回答因网络中断未完成，可以重新提问");
          renderFeedback(ctx.bubble, ans.id);
          return;
        }
        return recover(question, ctx, attempt + 1); // still being answered
      }).catch(function () { return recover(question, ctx, attempt + 1); });
    });
  }

  function send_(question, ctx, attempt) {
    var body = { message: question, channel: "web" };
    if (sessionId) body.session_id = sessionId;
    return fetch(base + "/api/v1/chat/stream", {
      method: "POST", headers: { "Content-Type": "application/json", "Accept": "text/event-stream" },
      body: JSON.stringify(body)
    }).then(function (resp) {
      if (!resp.ok) {
        return resp.json().then(function (e) {
          ctx.done = true;
          sys((e.error && e.error.message) || ("请求失败（" + resp.status + "）"));
        });
      }
      status.textContent = "";
      return readSse(resp, ctx).then(function () { if (!ctx.done) throw new Error("stream ended early"); });
    }).catch(function () { if (!ctx.done && attempt < 8) return recover(question, ctx, attempt); });
  }

  var busy = false;
  bar.addEventListener("submit", function (e) {
    e.preventDefault();
    var q = input.value.trim();
    if (!q || busy) return;
    busy = true; send.disabled = true;
    input.value = "";
    say("leye-user", q);
    var bubble = say("leye-bot", "");
    var text = el("div", "leye-text");
    bubble.appendChild(text);
    var ctx = { bubble: bubble, text: text, turnId: null, done: false };
    send_(q, ctx, 0).then(function () { busy = false; send.disabled = false; });
  });

  human.addEventListener("click", function () {
    function ask() {
      return fetch(base + "/api/v1/sessions/" + sessionId + "/handoff", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: "{}"
      }).then(function (r) { return r.json(); }).then(function (h) {
        if (h.error) { sys(h.error.message); return; }
        sys(h.message || ("已转人工，当前排队第" + h.position + "位"));
      }).catch(function () { sys("网络异常，转人工失败，请稍后重试"); });
    }
    if (!sessionId) setSession(Array.from(crypto.getRandomValues(new Uint8Array(16)), function (b) { return ("0" + b.toString(16)).slice(-2); }).join(""));
    ask();
  });
  window.addEventListener("online", function () { status.textContent = ""; });
})();
