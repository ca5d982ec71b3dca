/*
 * 乐业助手 counselor console (plain JS, no build step). Signs in with a cookie
 * (POST /console/api/login), sends the CSRF token on every state-changing request, and keeps
 * the queue live from the server-sent events of /console/api/events. All text from citizens
 * and the model is set with textContent, never as HTML.
 */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var me = null;          // the signed-in counselor (with csrf_token)
  var current = null;     // the escalation id shown
  var view = null;        // its last loaded view
  var REASONS = { explicit: "主动转人工", complaint: "投诉", wage_dispute: "欠薪/劳动争议", crisis: "危机", repeated_failure: "多次未能解答", not_covered: "资料未覆盖" };
  var ROLES = { user: "市民", assistant: "乐业助手", counselor: "职业指导师", system: "系统" };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  function toast(text) {
    var t = $("toast");
    t.textContent = text; t.style.display = "block";
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.style.display = "none"; }, 4000);
  }
  // `background`: a refresh the page makes by itself, which must not keep an unattended
  // sign-in alive (the idle expiry counts only a person's actions).
  function api(method, path, body, background) {
    var h = {};
    if (background) h["X-Leye-Background"] = "1";
    if (body !== undefined) h["Content-Type"] = "application/json";
    if (me && method !== "GET") h["X-CSRF-Token"] = me.csrf_token;
    return fetch(path, { method: method, headers: h, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (b) {
          if (r.status === 401) { signedOut(b.error && b.error.message); throw new Error("signed out"); }
          if (!r.ok) { var m = (b.error && b.error.message) || ("请求失败（" + r.status + "）"); toast(m); var e = new Error(m); e.body = b; throw e; }
          return b;
        });
      });
  }
  function minutes(s) { return s < 60 ? s + "秒" : Math.floor(s / 60) + "分钟"; }

  function signedOut(msg) {
    me = null;
    if (window.__leyeEvents) { window.__leyeEvents.close(); window.__leyeEvents = null; }
    $("app").className = ""; $("login").style.display = "block"; $("logout-btn").style.display = "none"; $("whoami").textContent = "";
    $("stats-btn").style.display = "none"; $("stats").style.display = "none"; $("alerts").style.display = "none";
    $("audit-btn").style.display = "none"; $("audit").style.display = "none";
    if (msg) $("login-error").textContent = msg;
    if (location.pathname !== "/console/login") history.replaceState(null, "", "/console/login");
  }

  function signedIn(who) {
    me = who;
    $("login").style.display = "none"; $("app").className = "on"; $("logout-btn").style.display = "";
    $("whoami").textContent = who.display_name + "（" + ({ counselor: "职业指导师", supervisor: "主管", admin: "管理员" }[who.role] || who.role) + "）";
    if (location.pathname !== "/console") history.replaceState(null, "", "/console");
    var sel = $("resolve-outcome"); sel.textContent = "";
    who.outcomes.forEach(function (o) { var op = el("option", null, o.label); op.value = o.id; sel.appendChild(op); });
    api("GET", "/console/api/counselors").then(function (b) {
      var t = $("transfer-select"); t.textContent = "";
      b.counselors.filter(function (c) { return c.id !== me.id; }).forEach(function (c) {
        var op = el("option", null, c.display_name); op.value = c.id; t.appendChild(op);
      });
    }).catch(function () {});
    $("stats-btn").style.display = (who.role === "supervisor" || who.role === "admin") ? "" : "none";
    $("audit-btn").style.display = who.role === "admin" ? "" : "none";
    listen();
    loadQueue();
    loadAlerts();
  }

  // Crisis alerts raised outside service hours: a red banner until someone acknowledges.
  function loadAlerts() {
    if (!me) return;
    api("GET", "/console/api/alerts", undefined, true).then(function (b) {
      var box = $("alerts"); box.textContent = "";
      box.style.display = b.alerts.length ? "block" : "none";
      b.alerts.forEach(function (a) {
        var row = el("div", "alert");
        row.appendChild(el("span", null, "⚠ 非服务时间的危机求助（" + new Date(a.created_at).toLocaleString() + "）" + (b.on_call ? "，请立即联系值班：" + b.on_call : "")));
        var open = el("button", null, "查看"); open.onclick = function () { openConversation(a.escalation_id); };
        var ack = el("button", null, "已处理");
        ack.onclick = function () { api("POST", "/console/api/alerts/" + a.id + "/ack", {}).then(loadAlerts).catch(function () {}); };
        row.appendChild(open); row.appendChild(ack); box.appendChild(row);
      });
    }).catch(function () {});
  }

  function bar(n, max) { var b = el("span", "bar"); b.style.width = Math.round(120 * n / Math.max(max, 1)) + "px"; return b; }
  function showStats() {
    api("GET", "/console/api/stats?days=30").then(function (d) {
      var body = $("stats-body"); body.textContent = "";
      var t = el("table");
      var head = el("tr");
      ["日期", "新会话", "转人工", "接入", "等待p50", "等待p95", "平均排队", "最长排队", "👍", "👎"].forEach(function (h) { head.appendChild(el("th", null, h)); });
      t.appendChild(head);
      var maxConv = Math.max.apply(null, d.days.map(function (x) { return x.conversations; }).concat([1]));
      d.days.forEach(function (x) {
        var tr = el("tr");
        var handoffs = Object.keys(x.handoffs).reduce(function (a, k) { return a + x.handoffs[k]; }, 0);
        var c = el("td"); c.appendChild(bar(x.conversations, maxConv)); c.appendChild(document.createTextNode(x.conversations));
        tr.appendChild(el("td", null, x.day)); tr.appendChild(c);
        [handoffs, x.claimed, x.wait_p50_secs == null ? "-" : "≤" + minutes(x.wait_p50_secs), x.wait_p95_secs == null ? "-" : "≤" + minutes(x.wait_p95_secs),
          x.queue_mean == null ? "-" : x.queue_mean.toFixed(1), x.queue_peak, x.feedback_up, x.feedback_down].forEach(function (v) { tr.appendChild(el("td", null, String(v))); });
        t.appendChild(tr);
      });
      body.appendChild(t);
      var sums = function (field) {
        var m = {};
        d.days.forEach(function (x) { Object.keys(x[field]).forEach(function (k) { m[k] = (m[k] || 0) + x[field][k]; }); });
        return m;
      };
      [["转人工原因", sums("handoffs"), REASONS], ["意图", sums("intents"), {}], ["结束方式", sums("outcomes"), {}]].forEach(function (g) {
        body.appendChild(el("h3", null, g[0]));
        var max = Math.max.apply(null, Object.keys(g[1]).map(function (k) { return g[1][k]; }).concat([1]));
        Object.keys(g[1]).forEach(function (k) {
          var row = el("div"); row.appendChild(bar(g[1][k], max)); row.appendChild(document.createTextNode((g[2][k] || k) + " " + g[1][k])); body.appendChild(row);
        });
      });
      body.appendChild(el("h3", null, "未能解答的高频问题"));
      var ol = el("ol");
      d.unanswered.forEach(function (u) { ol.appendChild(el("li", null, u.question + "（" + u.count + "次）")); });
      body.appendChild(ol);
      $("stats").style.display = "block";
    }).catch(function () {});
  }
  $("stats-btn").onclick = showStats;
  var ACTIONS = { login: "登录", login_failed: "登录失败", logout: "退出", open_transcript: "查看记录", claim: "接入", reply: "回复", note: "备注", tag: "标签", transfer: "转交", resolve: "结束", "return": "交回助手", draft: "AI起草", reveal: "查看回电号码", ack_alert: "处理提醒", "export": "导出" };
  Object.keys(ACTIONS).forEach(function (k) { var o = el("option", null, ACTIONS[k]); o.value = k; $("audit-action").appendChild(o); });
  function showAudit() {
    var q = "?limit=500&username=" + encodeURIComponent($("audit-user").value.trim()) + "&action=" + encodeURIComponent($("audit-action").value);
    api("GET", "/console/api/audit" + q).then(function (b) {
      var t = $("audit-table"); t.textContent = "";
      var head = el("tr");
      ["时间", "用户", "操作", "对象", "说明", "地址"].forEach(function (h) { head.appendChild(el("th", null, h)); });
      t.appendChild(head);
      b.entries.forEach(function (e) {
        var tr = el("tr");
        [new Date(e.at).toLocaleString(), e.username, ACTIONS[e.action] || e.action, e.target, e.detail, e.client_ip].forEach(function (v) { tr.appendChild(el("td", null, v)); });
        t.appendChild(tr);
      });
      $("audit").style.display = "block";
    }).catch(function () {});
  }
  $("audit-btn").onclick = showAudit;
  $("audit-go").onclick = showAudit;
  $("audit-close").onclick = function () { $("audit").style.display = "none"; };
  $("stats-close").onclick = function () { $("stats").style.display = "none"; };

  // Live queue: every notice reloads the queue, and the open conversation when it is the one.
  function listen() {
    if (window.__leyeEvents) window.__leyeEvents.close();
    var es = new EventSource("/console/api/events");
    window.__leyeEvents = es;
    var reload = function (ev) {
      loadQueue();
      try { var d = JSON.parse(ev.data || "{}"); if (current && d.escalation_id === current) openConversation(current, true, true); } catch (e) { /* ignore */ }
    };
    ["ready", "queue", "message", "summary"].forEach(function (n) { es.addEventListener(n, reload); });
    es.addEventListener("alert", loadAlerts);
    es.addEventListener("ready", loadAlerts);
    es.addEventListener("signed_out", function () { es.close(); signedOut("登录已过期，请重新登录"); });
  }

  function loadQueue() {
    if (!me) return;
    api("GET", "/console/api/queue", undefined, true).then(function (b) {
      var q = $("queue"); q.textContent = "";
      $("queue-count").textContent = "（" + b.queue.length + "）";
      if (!b.queue.length) q.appendChild(el("div", "empty", "暂无排队"));
      b.queue.forEach(function (it) {
        var d = el("div", "q-item" + (it.reason === "crisis" ? " crisis" : "") + (it.over_sla ? " over-sla" : "") + (it.id === current ? " active" : ""));
        d.dataset.id = it.id;
        var head = el("div", "q-head");
        var left = el("span");
        left.appendChild(el("span", "badge " + it.reason, REASONS[it.reason] || it.reason));
        if (it.callback) left.appendChild(el("span", "badge callback", "留言回电"));
        left.appendChild(document.createTextNode(it.status === "waiting" ? "等待中" : ("已接入 · " + (it.assignee || ""))));
        head.appendChild(left);
        head.appendChild(el("span", "q-wait", minutes(it.waiting_seconds)));
        d.appendChild(head);
        d.appendChild(el("div", "q-summary", it.summary));
        var meta = [it.channel, it.city, it.group].filter(Boolean).join(" · ");
        if (meta) d.appendChild(el("div", "q-meta", meta));
        if (it.over_sla) d.appendChild(el("div", "q-meta", "已超过" + me.sla_minutes + "分钟未接入"));
        d.onclick = function () { openConversation(it.id); };
        q.appendChild(d);
      });
    }).catch(function () {});
  }

  function renderTrace(bubble, m) {
    var t = m.trace || {};
    var hits = t.hits || t.passages || [];
    var cites = m.citations || [];
    if (!hits.length && !cites.length && !m.intent) return;
    var d = el("details", "trace");
    d.appendChild(el("summary", null, "意图：" + (m.intent || "-") + " · 检索 " + hits.length + " 条 · 引用 " + cites.length + " 条"));
    if (hits.length) {
      var ol = el("ol");
      hits.forEach(function (h) {
        var cited = cites.some(function (c) { var a = c.section || "", b = h.section || ""; return c.doc_id === h.doc_id && (a.indexOf(b) === 0 || b.indexOf(a) === 0); });
        var li = el("li", cited ? "cited" : null, (cited ? "【已引用】" : "") + "《" + (h.title || h.doc_id || "") + "》" + (h.section ? " · " + h.section : "") + (h.score != null ? "（" + Number(h.score).toFixed(3) + "）" : ""));
        ol.appendChild(li);
      });
      d.appendChild(ol);
    }
    cites.forEach(function (c) {
      d.appendChild(el("div", "cites trace-cited", "[" + c.n + "] 《" + c.title + "》" + (c.doc_number ? " " + c.doc_number : "") + (c.section ? " · " + c.section : "") + "：“" + c.quote + "”"));
    });
    bubble.appendChild(d);
  }

  function openConversation(id, keepScroll, background) {
    current = id;
    [].forEach.call(document.querySelectorAll(".q-item"), function (x) { x.classList.toggle("active", x.dataset.id === id); });
    api("GET", "/console/api/escalations/" + id, undefined, background).then(function (v) {
      view = v;
      var tr = $("transcript");
      var atBottom = tr.scrollTop + tr.clientHeight >= tr.scrollHeight - 30;
      tr.textContent = "";
      v.messages.forEach(function (m) {
        var b = el("div", "msg role-" + m.role);
        if (m.role !== "system") b.appendChild(el("span", "who", ROLES[m.role] || m.role));
        b.appendChild(el("span", "text", m.text));
        if (m.role === "assistant") {
          (m.jobs || []).forEach(function (j) { b.appendChild(el("div", "cites", "岗位：" + j.title + " · " + j.company + " · " + j.city)); });
          renderTrace(b, m);
        }
        tr.appendChild(b);
      });
      if (!keepScroll || atBottom) tr.scrollTop = tr.scrollHeight;
      var e = v.escalation;
      $("side").style.display = "";
      $("esc-status").textContent = (REASONS[e.reason] || e.reason) + " · " + ({ waiting: "等待中", assigned: "已接入：" + (e.assignee || ""), resolved: "已结束", returned: "已交回乐业助手" }[e.status] || e.status);
      var open = e.status === "waiting" || e.status === "assigned";
      $("claim-btn").style.display = e.status === "waiting" ? "" : "none";
      $("composer").style.display = e.status === "assigned" && e.mine ? "" : "none";
      ["resolve-btn", "transfer-btn", "return-btn"].forEach(function (b) { $(b).disabled = !(open && e.status === "assigned"); });
      $("callback-panel").style.display = v.messages.some(function (m) { return m.role === "user" && m.text.indexOf("留言：") === 0; }) ? "" : "none";
      $("reveal-btn").disabled = !(e.status === "assigned" && e.mine);
      $("callbacks").textContent = "";
      var s = v.ai_summary;
      $("ai-summary").textContent = s ? s.text : (e.status === "assigned" ? "AI 摘要生成中…" : "接入后自动生成");
      $("ai-sources").textContent = s && s.sources && s.sources.length ? "依据：" + s.sources.map(function (x) { return "《" + x.title + "》" + (x.doc_number || ""); }).join("；") : "";
      var p = v.profile || {};
      var lines = ["渠道：" + (v.channel || "-"), "城市：" + (p.city || "未知"), "人群：" + (p.group || "未知")];
      var el_ = v.eligibility;
      if (el_) {
        // The rules engine's result on what the citizen told the assistant (政策申领).
        lines.push("政策申领评估：");
        lines.push("  符合：" + (el_.qualified.length ? el_.qualified.map(function (c) { return c.name; }).join("、") : "暂无"));
        if (el_.possibly.length) lines.push("  可能符合：" + el_.possibly.slice(0, 6).map(function (c) { return c.name + "（需确认" + c.missing.join("、") + "）"; }).join("；"));
      }
      $("profile").textContent = lines.join("\n");
      $("profile").style.whiteSpace = "pre-line";
      if (document.activeElement !== $("tags-input")) $("tags-input").value = (e.tags || []).join("，");
      var notes = $("notes"); notes.textContent = "";
      v.notes.forEach(function (n) { notes.appendChild(el("div", "cites", (n.author || "") + "：" + n.text)); });
    }).catch(function () {});
  }

  $("login").addEventListener("submit", function (ev) {
    ev.preventDefault();
    $("login-error").textContent = "";
    $("login-btn").disabled = true;
    fetch("/console/api/login", { method: "POST", headers: { "Content-Type": "application/json" }, credentials: "same-origin",
      body: JSON.stringify({ username: $("username").value, password: $("password").value }) })
      .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, b: b }; }); })
      .then(function (x) {
        $("login-btn").disabled = false;
        if (!x.ok) { $("login-error").textContent = (x.b.error && x.b.error.message) || "登录失败"; return; }
        $("password").value = "";
        signedIn(x.b);
      }).catch(function () { $("login-btn").disabled = false; $("login-error").textContent = "网络异常，请重试"; });
  });
  $("logout-btn").onclick = function () { api("POST", "/console/api/logout", {}).then(function () { signedOut("已退出"); }).catch(function () {}); };
  $("claim-btn").onclick = function () {
    if (!current) return;
    api("POST", "/console/api/escalations/" + current + "/claim", {}).then(function () { toast("已接入"); openConversation(current); loadQueue(); })
      .catch(function () { openConversation(current); loadQueue(); });
  };
  $("send-btn").onclick = function () {
    var t = $("reply-text").value.trim();
    if (!t || !current) return;
    $("send-btn").disabled = true;
    api("POST", "/console/api/escalations/" + current + "/reply", { text: t }).then(function () {
      $("reply-text").value = ""; $("draft-note").style.display = "none"; openConversation(current);
    }).catch(function () {}).then(function () { $("send-btn").disabled = false; });
  };
  $("draft-btn").onclick = function () {
    if (!current) return;
    $("draft-btn").disabled = true; $("draft-note").style.display = ""; $("draft-note").textContent = "AI 正在起草…";
    api("POST", "/console/api/escalations/" + current + "/draft", {}).then(function (d) {
      // Only put into the editor: the counselor reads, edits and sends it themselves.
      var src = (d.citations || []).map(function (c) { return "《" + c.title + "》" + (c.section || ""); }).join("；");
      if (d.grounded) {
        $("reply-text").value = d.text;
        $("draft-note").textContent = d.label + (src ? " · 依据：" + src : "");
      } else {
        $("draft-note").textContent = "资料未覆盖“" + d.question + "”，请依据经验答复";
      }
    }).catch(function () { $("draft-note").style.display = "none"; }).then(function () { $("draft-btn").disabled = false; });
  };
  $("reveal-btn").onclick = function () {
    if (!current) return;
    api("POST", "/console/api/escalations/" + current + "/callback", {}).then(function (b) {
      var box = $("callbacks"); box.textContent = "";
      b.callbacks.forEach(function (c) { box.appendChild(el("div", "cites", c.phone + (c.message ? "：" + c.message : ""))); });
    }).catch(function () {});
  };
  $("note-btn").onclick = function () {
    var t = $("note-text").value.trim();
    if (!t || !current) return;
    api("POST", "/console/api/escalations/" + current + "/notes", { text: t }).then(function () { $("note-text").value = ""; openConversation(current, true); }).catch(function () {});
  };
  $("tags-btn").onclick = function () {
    if (!current) return;
    var tags = $("tags-input").value.split(/[,，]/).map(function (s) { return s.trim(); }).filter(Boolean);
    api("POST", "/console/api/escalations/" + current + "/tags", { tags: tags }).then(function () { toast("标签已保存"); loadQueue(); }).catch(function () {});
  };
  $("resolve-btn").onclick = function () {
    if (!current) return;
    api("POST", "/console/api/escalations/" + current + "/resolve", { outcome: $("resolve-outcome").value }).then(function () { toast("已结束"); openConversation(current); loadQueue(); }).catch(function () {});
  };
  $("transfer-btn").onclick = function () {
    var to = $("transfer-select").value;
    if (!current || !to) return;
    api("POST", "/console/api/escalations/" + current + "/transfer", { counselor_id: to }).then(function () { toast("已转交"); openConversation(current); loadQueue(); }).catch(function () {});
  };
  $("return-btn").onclick = function () {
    if (!current) return;
    api("POST", "/console/api/escalations/" + current + "/return", {}).then(function () { toast("已交回乐业助手"); openConversation(current); loadQueue(); }).catch(function () {});
  };

  // A reload keeps the sign-in (the cookie); /me returns the CSRF token again.
  fetch("/console/api/me", { credentials: "same-origin" }).then(function (r) {
    if (!r.ok) { signedOut(); return; }
    return r.json().then(signedIn);
  }).catch(function () { signedOut(); });
  setInterval(loadQueue, 30000); // waiting times move on even when nothing happens
})();
