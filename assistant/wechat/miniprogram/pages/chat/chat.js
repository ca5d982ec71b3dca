// The chat page: wx-specific glue only. Everything about the protocol (events, chunk
// decoding, reconnect) is in utils/protocol.js, which is tested in headless Chromium.
var P = require("../../utils/protocol.js");
var config = require("../../config.js");
var app = getApp();

// wx.connectSocket as the transport of protocol.SocketClient (the token in a header).
function wxTransport(url, token) {
  return {
    open: function (h) {
      var task = wx.connectSocket({ url: url, header: { Authorization: "Bearer " + token } });
      task.onOpen(function () { h.open(); });
      task.onMessage(function (m) { h.message(m.data); });
      task.onClose(function () { h.close(); });
      task.onError(function () {});
      return {
        send: function (t) { task.send({ data: t }); },
        close: function () { task.close({}); }
      };
    }
  };
}

Page({
  data: { consented: false, items: [], draft: "", bottom: "end" },

  onLoad: function () {
    var self = this;
    this.conv = new P.Conversation(wx.getStorageSync("leye_conversation") || {});
    wx.getPrivacySetting({
      success: function (r) { if (!r.needAuthorization) self.onAgree(); },
      fail: function () {}
    });
  },

  onUnload: function () { if (this.client) this.client.stop(); },

  onAgree: function () {
    var self = this;
    this.setData({ consented: true });
    app.login().then(function (token) { self.connect(token); }, function (msg) { self.system(msg); });
  },

  connect: function (token) {
    var self = this;
    var ws = config.baseUrl.replace(/^http/, "ws") + "/api/v1/ws";
    this.client = new P.SocketClient(wxTransport(ws, token), {
      token: token,
      header: true,
      conversation: this.conv,
      onEvent: function (ev) { self.onEvent(ev); }
    });
    this.client.connect();
  },

  // One event of the socket (or of the chunked fallback) into the message list.
  onEvent: function (ev) {
    var d = ev.data || {};
    wx.setStorageSync("leye_conversation", this.conv.save());
    if (ev.event === "meta") {
      this.push({ role: "assistant", text: "", turnId: d.turn_id });
    } else if (ev.event === "token") {
      this.patchLast({ text: this.conv.answer });
    } else if (ev.event === "done") {
      if (d.answer) this.patchLast({ text: d.answer });
    } else if (ev.event === "citations") {
      this.patchLast({ sources: P.sourcesText(d.citations) });
    } else if (ev.event === "jobs") {
      this.patchLast({ jobs: d.jobs || [] });
    } else if (ev.event === "handoff") {
      this.system("已转人工，当前排队第" + d.position + "位");
      this.askSubscribe();
    } else if (ev.event === "counselor_joined" || ev.event === "status") {
      if (d.text) this.system(d.text);
    } else if (ev.event === "counselor_message") {
      this.push({ role: "counselor", text: "职业指导师 " + d.name + "：" + d.text });
    } else if (ev.event === "error") {
      if (d.code === "login_required") { app.forgetToken(); }
      this.system(d.message || "出错了，请稍后再试");
    }
  },

  push: function (item) {
    var items = this.data.items.concat([Object.assign({ key: Date.now() + "-" + this.data.items.length }, item)]);
    this.setData({ items: items, bottom: "end" });
  },

  patchLast: function (patch) {
    var items = this.data.items.slice();
    for (var i = items.length - 1; i >= 0; i--) {
      if (items[i].role === "assistant") { items[i] = Object.assign({}, items[i], patch); break; }
    }
    this.setData({ items: items, bottom: "end" });
  },

  system: function (text) { this.push({ role: "system", text: text }); },

  onInput: function (e) { this.setData({ draft: e.detail.value }); },

  send: function () {
    var text = (this.data.draft || "").trim();
    if (!text || !this.client) return;
    this.push({ role: "user", text: text });
    this.setData({ draft: "" });
    this.client.ask(text);
  },

  handoff: function () {
    if (!this.client) return;
    this.push({ role: "user", text: "转人工" });
    this.client.ask("转人工");
  },

  // A counselor may reply after the citizen left: ask once for the subscribe message.
  askSubscribe: function () {
    if (!config.subscribeTemplateId) return;
    wx.requestSubscribeMessage({ tmplIds: [config.subscribeTemplateId], complete: function () {} });
  },

  toggleSources: function (e) {
    var i = e.currentTarget.dataset.i;
    var items = this.data.items.slice();
    items[i] = Object.assign({}, items[i], { open: !items[i].open });
    this.setData({ items: items });
  },

  rate: function (e) {
    var sid = this.conv.sessionId;
    if (!sid) return;
    wx.request({
      url: config.baseUrl + "/api/v1/sessions/" + sid + "/feedback",
      method: "POST",
      header: { Authorization: "Bearer " + app.globalData.token },
      data: { turn_id: e.currentTarget.dataset.turn, rating: e.currentTarget.dataset.rating },
      success: function () { wx.showToast({ title: "谢谢反馈", icon: "none" }); }
    });
  },

  // Fallback where sockets are blocked: wx.request with chunked transfer, decoded by
  // protocol.ChunkedStream (characters and events may be split across chunks).
  askChunked: function (text) {
    var self = this;
    var stream = new P.ChunkedStream();
    this.conv.startTurn();
    var body = { message: text };
    if (this.conv.sessionId) body.session_id = this.conv.sessionId;
    var task = wx.request({
      url: config.baseUrl + "/api/v1/miniprogram/chat",
      method: "POST",
      enableChunked: true,
      header: { Authorization: "Bearer " + app.globalData.token },
      data: body
    });
    task.onChunkReceived(function (res) {
      var events = stream.push(res.data);
      for (var i = 0; i < events.length; i++) {
        if (self.conv.take(events[i])) self.onEvent(events[i]);
      }
    });
  }
});
