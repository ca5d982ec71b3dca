/*
 * 乐业助手 web chat widget. Include it on any page:
 *   <script src="https://HOST/widget.js"></script>
 * With an element #leye-chat on the page the chat fills it; otherwise a 💬 button opens it as
 * a panel. Answers stream over POST /api/v1/chat/stream (server-sent events read from fetch).
 * A privacy notice is shown (and acknowledged) before the first message. The session id and
 * its secret token come from POST /api/v1/sessions and are kept in localStorage so a reload
 * continues the conversation; every call sends the token in the X-Session-Token header, never
 * in a URL. After a network drop the widget resumes the answer's event stream from the last
 * event id it saw (GET …/turns/{turn}/events with Last-Event-ID), and falls back to the stored
 * transcript, so a question is never sent twice. "删除记录" deletes the conversation.
 * From a handoff until the conversation is resolved, counselors' replies arrive on the
 * session's event stream (GET …/events, resumed with Last-Event-ID); while a counselor holds
 * the conversation, messages go to them, not the model. Outside service hours the citizen can
 * leave a message and a callback number.
 */
(function () {
  "use strict";
  if (window.__leyeWidget) return;
  window.__leyeWidget = true;
  var script = document.currentScript;
  var base = script && script.src ? new URL(script.src, location.href).origin : location.origin;
  var KEY = "leye_session";
  var ACK = "leye_privacy_ack";

  var css = [
    ".leye{display:flex;flex-direction:column;height:100%;background:#fff;font-size:15px;color:#1f2329;box-sizing:border-box}",
    ".leye *{box-sizing:border-box}",
    ".leye-log{flex:1;overflow-y:auto;padding:12px;-webkit-overflow-scrolling:touch}",
    ".leye-msg{max-width:86%;margin:8px 0;padding:9px 12px;border-radius:12px;line-height:1.6;white-space:pre-wrap;word-break:break-word}",
    ".leye-user{margin-left:auto;background:#c8102e;color:#fff;border-bottom-right-radius:4px}",
    ".leye-bot{background:#f1f3f6;border-bottom-left-radius:4px}",
    ".leye-counselor{background:#e0f2fe;border:1px solid #7dd3fc;border-bottom-left-radius:4px}",
    ".leye-who{display:block;font-size:12px;color:#0369a1;margin-bottom:2px}",
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
    ".leye-bar button[disabled],.leye-bar input[disabled]{opacity:.5}",
    ".leye-status{font-size:12px;color:#b45309;text-align:center;min-height:0}",
    ".leye-notice{margin:8px 0;padding:10px 12px;border:1px solid #fde68a;background:#fffbeb;border-radius:10px;font-size:13px;line-height:1.6;color:#4b5563}",
    ".leye-notice button{margin-top:6px;font-size:14px;padding:4px 12px;border-radius:6px;border:1px solid #c8102e;background:#c8102e;color:#fff}",
    ".leye-callback{margin:8px 0;padding:10px 12px;border:1px solid #bae6fd;background:#f0f9ff;border-radius:10px;font-size:13px}",
    ".leye-callback input,.leye-callback textarea{width:100%;margin-top:6px;font-size:15px;padding:6px 8px;border:1px solid #d0d5dd;border-radius:6px}",
    ".leye-callback button{margin-top:6px;font-size:14px;padding:4px 12px;border-radius:6px;border:1px solid #c8102e;background:#c8102e;color:#fff}",
    ".leye-tools{display:flex;justify-content:flex-end;padding:0 10px;font-size:12px}",
    ".leye-tools button{border:none;background:none;color:#6b7280;cursor:pointer;padding:4px}",
    ".leye-fab{position:fixed;right:16px;bottom:16px;width:56px;height:56px;border-radius:50%;border:none;background:#c8102e;color:#fff;font-size:26px;box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:2147483000}",
    ".leye-panel{position:fixed;right:16px;bottom:84px;width:min(380px,calc(100vw - 32px));height:min(620px,calc(100vh - 110px));border-radius:14px;overflow:hidden;box-shadow:0 8px 30px rgba(0,0,0,.25);z-index:2147483000;display:none}",
    "@media (max-width:480px){.leye-panel{right:0;bottom:0;width:100vw;height:100vh;border-radius:0}}",
    ".leye-chips{display:flex;flex-wrap:wrap;gap:6px;margin:6px 0}",
    ".leye-chips button{font-size:15px;padding:6px 12px;border-radius:16px;border:1px solid #1d4ed8;background:#fff;color:#1d4ed8;cursor:pointer}",
    ".leye-why{font-size:13px;color:#4b5563;margin-top:4px}",
    ".leye-benefit{border:1px solid #cbd5e1;border-left:4px solid #047857;border-radius:10px;padding:8px 10px;margin-top:8px;background:#fff;font-size:14px}",
    ".leye-benefit.leye-maybe{border-left-color:#b45309}",
    ".leye-benefit b{display:block;font-size:15px;margin-bottom:2px}",
    ".leye-benefit .leye-label{color:#374151;font-weight:600}",
    ".leye-benefit ul{margin:2px 0 2px 18px;padding:0}",
    ".leye-benefit .leye-src{color:#4b5563;font-size:12px}",
    ".leye-list-actions button{margin:8px 8px 0 0;font-size:14px;padding:4px 12px;border-radius:6px;border:1px solid #047857;background:#047857;color:#fff}",
    ".leye.leye-large{font-size:19px}",
    ".leye.leye-large .leye-sys,.leye.leye-large .leye-cites,.leye.leye-large .leye-benefit,.leye.leye-large .leye-job{font-size:17px}",
    ".leye.leye-large .leye-bar input,.leye.leye-large .leye-chips button{font-size:19px}"
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
  var tools = el("div", "leye-tools");
  var forget = el("button", "leye-delete", "删除记录");
  forget.type = "button";
  // Many users are older or see poorly: a larger text size, remembered.
  var large = el("button", "leye-large-toggle", "大字");
  large.type = "button";
  large.setAttribute("aria-label", "切换大字模式");
  large.setAttribute("aria-pressed", "false");
  tools.appendChild(large);
  tools.appendChild(forget);
  root.appendChild(log); root.appendChild(status); root.appendChild(tools); root.appendChild(bar);
  host.appendChild(root);
  input.setAttribute("aria-label", "输入您的问题");
  function setLarge(on) {
    root.classList.toggle("leye-large", on);
    large.setAttribute("aria-pressed", on ? "true" : "false");
    try { localStorage.setItem("leye_large", on ? "1" : "0"); } catch (e) { /* private mode */ }
  }
  try { if (localStorage.getItem("leye_large") === "1") setLarge(true); } catch (e) { /* private mode */ }
  large.addEventListener("click", function () { setLarge(!root.classList.contains("leye-large")); });

  // { id, token } of this browser's conversation, or null before the first message.
  var session = null;
  try { session = JSON.parse(localStorage.getItem(KEY) || "null"); } catch (e) { session = null; }
  try { localStorage.removeItem("leye_session_id"); } catch (e) { /* the old, token-less key */ }
  function setSession(s) {
    session = s;
    try { if (s) localStorage.setItem(KEY, JSON.stringify(s)); else localStorage.removeItem(KEY); } catch (e) { /* private mode */ }
  }
  function headers(json) {
    var h = {};
    if (json) h["Content-Type"] = "application/json";
    if (session) h["X-Session-Token"] = session.token;
    return h;
  }
  function sessionUrl(path) { return base + "/api/v1/sessions/" + session.id + (path || ""); }
  // A session for this browser, created on first need (first message or 转人工).
  function ensureSession() {
    if (session) return Promise.resolve(session);
    return fetch(base + "/api/v1/sessions", { method: "POST" }).then(function (r) {
      return r.json().then(function (b) {
        if (!r.ok) throw new Error((b.error && b.error.message) || ("请求失败（" + r.status + "）"));
        setSession({ id: b.session_id, token: b.session_token, ev: 0 });
        return session;
      });
    });
  }
  function scroll() { log.scrollTop = log.scrollHeight; }
  function say(cls, text) { var m = el("div", "leye-msg " + cls, text); log.appendChild(m); scroll(); return m; }
  function sys(text) { return say("leye-sys", text); }

  say("leye-bot", "您好！我是乐业助手，可以为您解答就业创业政策、查找招聘岗位，也可以转接人工职业指导师。");

  // The privacy notice comes before the first message; the text (with the retention period)
  // is the server's, so it always states what this deployment does.
  var acked = false;
  try { acked = localStorage.getItem(ACK) === "1"; } catch (e) { /* private mode */ }
  var fallbackNotice = "隐私提示：您的对话会被保存，用于解答问题和转接人工；身份证号、手机号、银行卡号等个人信息会自动隐去后再保存。请不要输入姓名和详细住址。您可以随时点击“删除记录”删除本次对话。";
  function showNotice() {
    var n = el("div", "leye-msg leye-notice");
    var p = el("div", "leye-notice-text", fallbackNotice);
    n.appendChild(p);
    fetch(base + "/api/v1/privacy").then(function (r) { return r.json(); })
      .then(function (b) { if (b.notice) p.textContent = b.notice; }).catch(function () { /* keep the fallback */ });
    if (!acked) {
      input.disabled = true; send.disabled = true;
      var ok = el("button", "leye-ack", "我知道了");
      ok.type = "button";
      ok.onclick = function () {
        acked = true;
        try { localStorage.setItem(ACK, "1"); } catch (e) { /* private mode */ }
        input.disabled = false; send.disabled = false; ok.remove(); input.focus();
      };
      n.appendChild(ok);
    }
    log.appendChild(n);
  }
  showNotice();

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

  // 政策申领: the next question's options as chips (a tap answers), or one card per benefit
  // (what you get, materials checklist, where to apply, source) and a 申领清单 to copy or print.
  function renderClaim(bubble, c) {
    if (!c) return;
    if (c.question) {
      if (c.question.why) bubble.appendChild(el("div", "leye-why", c.question.why));
      var chips = el("div", "leye-chips");
      chips.setAttribute("role", "group");
      chips.setAttribute("aria-label", c.question.text);
      c.question.options.forEach(function (o) {
        var b = el("button", "leye-chip", o);
        b.type = "button";
        b.onclick = function () {
          if (busy) return;
          chips.querySelectorAll("button").forEach(function (x) { x.disabled = true; });
          input.value = o;
          if (bar.requestSubmit) bar.requestSubmit(); else bar.dispatchEvent(new Event("submit", { cancelable: true }));
        };
        chips.appendChild(b);
      });
      bubble.appendChild(chips);
      return;
    }
    function card(v, maybe) {
      var d = el("div", "leye-benefit" + (maybe ? " leye-maybe" : ""));
      d.setAttribute("role", "article");
      d.setAttribute("aria-label", v.name);
      d.appendChild(el("b", null, v.name));
      var what = el("div"); what.appendChild(el("span", "leye-label", "可享受：")); what.appendChild(document.createTextNode(v.what)); d.appendChild(what);
      if (maybe && v.missing && v.missing.length) {
        var m = el("div"); m.appendChild(el("span", "leye-label", "还需确认：")); m.appendChild(document.createTextNode(v.missing.join("、"))); d.appendChild(m);
      }
      if (v.materials && v.materials.length) {
        d.appendChild(el("span", "leye-label", "材料清单："));
        var ul = el("ul");
        v.materials.forEach(function (x) { ul.appendChild(el("li", null, "☐ " + x)); });
        d.appendChild(ul);
      }
      if (v.where && v.where.length) {
        var w = el("div"); w.appendChild(el("span", "leye-label", "去哪里办：")); w.appendChild(document.createTextNode(v.where.join("；"))); d.appendChild(w);
      }
      d.appendChild(el("div", "leye-src", "来源：" + v.source));
      return d;
    }
    (c.qualified || []).forEach(function (v) { bubble.appendChild(card(v, false)); });
    (c.possibly || []).slice(0, 8).forEach(function (v) { bubble.appendChild(card(v, true)); });
    if (c.qualified && c.qualified.length) {
      var lines = ["申领清单"];
      c.qualified.forEach(function (v, i) {
        lines.push((i + 1) + ". " + v.name + "：" + v.what);
        if (v.materials.length) lines.push("   材料：" + v.materials.join("；"));
        if (v.where.length) lines.push("   办理：" + v.where.join("；"));
        lines.push("   来源：" + v.source);
      });
      var text = lines.join("\n");
      var acts = el("div", "leye-list-actions");
      var copy = el("button", "leye-copy", "复制申领清单");
      copy.type = "button";
      copy.onclick = function () {
        var done = function () { sys("申领清单已复制"); };
        if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
        else { fallbackCopy(text); done(); }
      };
      var print = el("button", "leye-print", "打印");
      print.type = "button";
      print.onclick = function () {
        var w = window.open("", "_blank");
        if (!w) return;
        var pre = w.document.createElement("pre");
        pre.style.cssText = "font-size:16px;white-space:pre-wrap";
        pre.textContent = text;
        w.document.body.appendChild(pre);
        w.print();
      };
      acts.appendChild(copy); acts.appendChild(print);
      bubble.appendChild(acts);
      bubble.setAttribute("data-claim-list", text);
    }
  }
  function fallbackCopy(text) {
    var t = el("textarea"); t.value = text; document.body.appendChild(t); t.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    t.remove();
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
        fetch(sessionUrl("/feedback"), {
          method: "POST", headers: headers(true),
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
    if (name === "meta") { ctx.turnId = data.turn_id; }
    else if (name === "token") { ctx.text.textContent += data.text; scroll(); }
    else if (name === "citations") renderCitations(ctx.bubble, data.citations);
    else if (name === "jobs") renderJobs(ctx.bubble, data.jobs, data.relaxed);
    else if (name === "claim") ctx.claim = data;
    else if (name === "handoff") { sys("已转人工，当前排队第" + data.position + "位"); goLive(); if (data.callback) showCallbackForm(); }
    else if (name === "done") {
      ctx.done = true;
      if (!data.answer && !ctx.text.textContent) {
        // A counselor holds the conversation: the message went to them, not the model.
        ctx.bubble.remove();
        status.textContent = "已发送给职业指导师";
      } else {
        // After the text: the chips or the cards follow what they belong to.
        if (ctx.claim) {
          // The chips stand for the numbered options the text channels get.
          if (ctx.claim.question) ctx.text.textContent = ctx.text.textContent.split("\n回复数字：")[0];
          renderClaim(ctx.bubble, ctx.claim);
        }
        renderFeedback(ctx.bubble, ctx.turnId);
      }
    }
    else if (name === "error") { ctx.done = true; sys(data.message || "服务暂时不可用"); }
    scroll();
  }

  // Reads an SSE body from fetch: blocks separated by a blank line, "event:", "data:" and
  // "id:" lines; stops early when keepGoing() turns false.
  function readEvents(resp, onEvent, keepGoing) {
    var reader = resp.body.getReader();
    var decoder = new TextDecoder();
    var buf = "";
    function pump() {
      return reader.read().then(function (r) {
        if (r.done) return;
        if (keepGoing && !keepGoing()) { reader.cancel().catch(function () {}); return; }
        buf += decoder.decode(r.value, { stream: true });
        var idx;
        while ((idx = buf.indexOf("\n\n")) >= 0) {
          var block = buf.slice(0, idx); buf = buf.slice(idx + 2);
          var name = "message", data = "", id = null;
          block.split("\n").forEach(function (line) {
            if (line.indexOf("event:") === 0) name = line.slice(6).trim();
            else if (line.indexOf("data:") === 0) data += line.slice(5).replace(/^ /, "");
            else if (line.indexOf("id:") === 0) id = parseInt(line.slice(3).trim(), 10);
          });
          onEvent(name, data, id);
        }
        return pump();
      });
    }
    return pump();
  }

  function readSse(resp, ctx) {
    return readEvents(resp, function (name, data, id) {
      // Events are numbered; one already shown (after a resume) is not shown twice.
      if (id != null && id <= ctx.lastId) return;
      if (id != null) ctx.lastId = id;
      if (data) { try { handleEvent(name, JSON.parse(data), ctx); } catch (e) { /* keep reading */ } }
    });
  }

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  // After a drop: resume the answer's events where they stopped; when the server no longer
  // has them, take the answer from the stored transcript.
  function recover(question, ctx, attempt) {
    var wait = Math.min(1000 * Math.pow(2, attempt), 15000);
    status.textContent = "网络中断，正在重新连接…";
    return sleep(wait).then(function () {
      if (!session) return send_(question, ctx, attempt + 1);
      if (ctx.turnId && !ctx.noResume) {
        var h = headers(false);
        h["Last-Event-ID"] = String(ctx.lastId);
        h["Accept"] = "text/event-stream";
        return fetch(sessionUrl("/turns/" + ctx.turnId + "/events"), { headers: h }).then(function (resp) {
          if (!resp.ok) { ctx.noResume = true; return recover(question, ctx, attempt); }
          status.textContent = "";
          return readSse(resp, ctx).then(function () { if (!ctx.done) throw new Error("stream ended early"); });
        }).catch(function () { if (!ctx.done && attempt < 8) return recover(question, ctx, attempt + 1); });
      }
      return fetch(sessionUrl(), { headers: headers(false) }).then(function (r) {
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
    return ensureSession().then(function () {
      var h = headers(true);
      h["Accept"] = "text/event-stream";
      return fetch(base + "/api/v1/chat/stream", {
        method: "POST", headers: h,
        body: JSON.stringify({ session_id: session.id, message: question })
      });
    }).then(function (resp) {
      if (!resp.ok) {
        return resp.json().then(function (e) {
          var code = e.error && e.error.code;
          if (code === "session_not_found" && !ctx.retried) {
            // Deleted or expired: start a new conversation and send once more.
            ctx.retried = true; setSession(null);
            return send_(question, ctx, attempt);
          }
          ctx.done = true;
          sys((e.error && e.error.message) || ("请求失败（" + resp.status + "）"));
        });
      }
      status.textContent = "";
      return readSse(resp, ctx).then(function () { if (!ctx.done) throw new Error("stream ended early"); });
    }).catch(function () { if (!ctx.done && attempt < 8) return recover(question, ctx, attempt); });
  }

  // The session's event stream: what counselors do. Numbered events; the last one seen is
  // kept with the session so a reload or a reconnect shows each exactly once.
  var events = null;
  function showEvent(name, data) {
    if (name === "counselor_joined") sys(data.text || ("职业指导师 " + data.name + " 已接入"));
    else if (name === "counselor_message") {
      var m = say("leye-counselor", "");
      m.appendChild(el("span", "leye-who", "职业指导师 " + (data.name || "")));
      m.appendChild(el("span", "leye-text", data.text));
      status.textContent = "";
      scroll();
    } else if (name === "status") {
      if (data.text) sys(data.text);
      if ((data.status === "resolved" || data.status === "returned") && session) {
        // Back with the assistant: the stream is closed until the next handoff.
        session.live = false; setSession(session); events = null;
      }
    }
  }
  // The stream is opened only while a person is involved (from the handoff until the
  // conversation is resolved or returned), so idle widgets hold no connection.
  function goLive() {
    if (!session) return;
    session.live = true; setSession(session);
    listenEvents();
  }
  function listenEvents(attempt) {
    attempt = attempt || 0;
    if (!session || (events && events.session === session.id)) return;
    var mine = { session: session.id, stop: false };
    events = mine;
    var h = headers(false);
    h["Accept"] = "text/event-stream";
    h["Last-Event-ID"] = String(session.ev || 0);
    fetch(sessionUrl("/events"), { headers: h }).then(function (resp) {
      if (resp.status === 404) { mine.stop = true; return; }
      if (!resp.ok) throw new Error("status " + resp.status);
      attempt = 0;
      return readEvents(resp, function (name, data, id) {
        if (id == null || !session || id <= (session.ev || 0)) return;
        session.ev = id; setSession(session);
        try { showEvent(name, JSON.parse(data)); } catch (e) { /* keep reading */ }
      }, function () { return events === mine; });
    }).catch(function () { /* reconnect below */ }).then(function () {
      if (events !== mine || mine.stop || !session || !session.live) { if (events === mine) events = null; return; }
      events = null;
      setTimeout(function () { listenEvents(attempt + 1); }, Math.min(1000 * Math.pow(2, attempt), 30000));
    });
  }
  if (session && session.live) listenEvents();

  // Outside service hours (or with nobody online) the citizen may leave a message and a
  // callback number; the number is stored encrypted and shown only to the counselor who takes
  // the conversation.
  function showCallbackForm() {
    if (log.querySelector(".leye-callback")) return;
    var f = el("form", "leye-callback");
    f.appendChild(el("div", null, "留言并留下回电号码，职业指导师会在服务时间联系您："));
    var phone = el("input", "leye-cb-phone");
    phone.type = "tel"; phone.placeholder = "手机号或带区号的固定电话"; phone.maxLength = 20;
    var msg = el("textarea", "leye-cb-msg");
    msg.placeholder = "想咨询的问题（选填）"; msg.maxLength = 500;
    var ok = el("button", "leye-cb-send", "提交留言");
    ok.type = "submit";
    f.appendChild(phone); f.appendChild(msg); f.appendChild(ok);
    f.addEventListener("submit", function (e) {
      e.preventDefault();
      ok.disabled = true;
      fetch(sessionUrl("/callback"), { method: "POST", headers: headers(true), body: JSON.stringify({ phone: phone.value, message: msg.value }) })
        .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, b: b }; }); })
        .then(function (x) {
          if (!x.ok) { ok.disabled = false; sys((x.b.error && x.b.error.message) || "提交失败，请重试"); return; }
          f.remove();
          sys("已收到您的留言，职业指导师会在服务时间联系您。");
        }).catch(function () { ok.disabled = false; sys("网络异常，提交失败，请稍后重试"); });
    });
    log.appendChild(f);
    scroll();
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
    var ctx = { bubble: bubble, text: text, turnId: null, done: false, lastId: 0 };
    send_(q, ctx, 0).then(function () { busy = false; send.disabled = false; });
  });

  human.addEventListener("click", function () {
    ensureSession().then(function () {
      return fetch(sessionUrl("/handoff"), { method: "POST", headers: headers(true), body: "{}" });
    }).then(function (r) { return r.json(); }).then(function (h) {
      if (h.error) { sys(h.error.message); return; }
      sys(h.message || ("已转人工，当前排队第" + h.position + "位"));
      goLive();
      if (h.callback) showCallbackForm();
    }).catch(function () { sys("网络异常，转人工失败，请稍后重试"); });
  });

  forget.addEventListener("click", function () {
    if (!session) { sys("当前没有对话记录"); return; }
    if (!window.confirm("确定删除本次对话的全部记录吗？删除后无法恢复。")) return;
    fetch(sessionUrl(), { method: "DELETE", headers: headers(false) }).then(function (r) {
      if (!r.ok && r.status !== 404) throw new Error("status " + r.status);
      setSession(null);
      events = null;
      while (log.firstChild) log.removeChild(log.firstChild);
      sys("对话记录已删除");
    }).catch(function () { sys("删除失败，请稍后再试"); });
  });
  window.addEventListener("online", function () { status.textContent = ""; });
})();
