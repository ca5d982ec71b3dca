/*
 * 乐业助手 mini-program protocol: everything about talking to `leye serve` that does not need
 * `wx`, so it runs (and is tested) in any JavaScript engine:
 *
 * - Utf8Decoder: bytes to text across chunk boundaries (a character's bytes may arrive in two
 *   chunks; the mini-program runtime has no streaming TextDecoder everywhere).
 * - SseParser: server-sent-event text to events across chunk boundaries (an event may be
 *   split anywhere, also inside "\r\n").
 * - ChunkedStream: both, for `wx.request({enableChunked: true})`'s onChunkReceived.
 * - Conversation: what the client remembers (session, turn, last event id, last counselor
 *   event) so that a reconnect resumes instead of asking again.
 * - SocketClient: the WebSocket protocol of /api/v1/ws over an injected transport (wx.connectSocket
 *   in the mini-program, WebSocket in a browser), with auth, reconnect and backoff.
 */
(function (root) {
  "use strict";

  function Utf8Decoder() {
    this.pending = [];
  }

  // Decodes what is complete; keeps a trailing partial character for the next chunk. Invalid
  // bytes become U+FFFD instead of throwing.
  Utf8Decoder.prototype.decode = function (chunk) {
    var bytes = chunk instanceof ArrayBuffer ? new Uint8Array(chunk) : chunk;
    var all = this.pending.concat(Array.prototype.slice.call(bytes));
    var out = "";
    var i = 0;
    while (i < all.length) {
      var b = all[i];
      var need = b < 0x80 ? 0 : (b & 0xe0) === 0xc0 ? 1 : (b & 0xf0) === 0xe0 ? 2 : (b & 0xf8) === 0xf0 ? 3 : -1;
      if (need < 0) { out += "\ufffd"; i += 1; continue; }
      if (i + need >= all.length) break; // incomplete: the rest comes with the next chunk
      var cp = need === 0 ? b : b & (0x3f >> need);
      var ok = true;
      for (var k = 1; k <= need; k++) {
        var c = all[i + k];
        if ((c & 0xc0) !== 0x80) { ok = false; break; }
        cp = (cp << 6) | (c & 0x3f);
      }
      if (!ok) { out += "\ufffd"; i += 1; continue; }
      out += cp > 0xffff
        ? String.fromCharCode(0xd800 + ((cp - 0x10000) >> 10), 0xdc00 + ((cp - 0x10000) & 0x3ff))
        : String.fromCharCode(cp);
      i += need + 1;
    }
    this.pending = all.slice(i);
    return out;
  };

  function SseParser() {
    this.buf = "";
  }

  // Returns the events completed by this text: {event, id, data} (data parsed as JSON when it
  // is JSON). Comment lines (":" keep-alives) are skipped.
  SseParser.prototype.push = function (text) {
    this.buf += text;
    var events = [];
    for (;;) {
      var m = /\r\n\r\n|\n\n|\r\r/.exec(this.buf);
      if (!m) break;
      var block = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      var ev = { event: "message", id: null, data: "" };
      var lines = block.split(/\r\n|\n|\r/);
      var data = [];
      for (var i = 0; i < lines.length; i++) {
        var line = lines[i];
        if (line === "" || line.charAt(0) === ":") continue;
        var c = line.indexOf(":");
        var field = c < 0 ? line : line.slice(0, c);
        var value = c < 0 ? "" : line.slice(c + 1);
        if (value.charAt(0) === " ") value = value.slice(1);
        if (field === "event") ev.event = value;
        else if (field === "data") data.push(value);
        else if (field === "id") ev.id = value;
      }
      if (data.length === 0 && ev.event === "message") continue;
      var raw = data.join("\n");
      try { ev.data = JSON.parse(raw); } catch (e) { ev.data = raw; }
      events.push(ev);
    }
    return events;
  };

  function ChunkedStream() {
    this.decoder = new Utf8Decoder();
    this.parser = new SseParser();
  }

  ChunkedStream.prototype.push = function (chunk) {
    return this.parser.push(this.decoder.decode(chunk));
  };

  // What the client remembers about one conversation.
  function Conversation(saved) {
    saved = saved || {};
    this.sessionId = saved.sessionId || null;
    this.turnId = null;
    this.lastEventId = 0;
    this.turnOpen = false;
    this.lastSeq = saved.lastSeq || 0;
    this.answer = "";
  }

  Conversation.prototype.save = function () {
    return { sessionId: this.sessionId, lastSeq: this.lastSeq };
  };

  // Takes one event (SSE or socket frame, normalised to {event, id, turn_id, seq, data}) and
  // returns false for one already seen (after a resume), true otherwise.
  Conversation.prototype.take = function (ev) {
    var name = ev.event;
    if (name === "session") { this.sessionId = ev.data.session_id; return true; }
    if (ev.seq != null) {
      if (ev.seq <= this.lastSeq) return false;
      this.lastSeq = ev.seq;
      return true;
    }
    if (ev.id != null) {
      var id = Number(ev.id);
      if (ev.turn_id && this.turnId && ev.turn_id !== this.turnId) { this.lastEventId = 0; }
      if (id <= this.lastEventId) return false;
      this.lastEventId = id;
    }
    if (name === "meta") {
      this.turnId = ev.data.turn_id;
      this.sessionId = ev.data.session_id || this.sessionId;
      this.turnOpen = true;
      this.answer = "";
    } else if (name === "token") {
      this.answer += ev.data.text;
    } else if (name === "done") {
      this.answer = ev.data.answer || this.answer;
      this.turnOpen = false;
    } else if (name === "error") {
      this.turnOpen = false;
    }
    return true;
  };

  // Frames to send after a reconnect: counselor events after the last one seen, and the
  // turn in progress after its last event — never the question again.
  Conversation.prototype.resumeFrames = function () {
    var frames = [];
    if (!this.sessionId) return frames;
    frames.push({ type: "watch", session_id: this.sessionId, after: this.lastSeq });
    if (this.turnOpen && this.turnId) {
      frames.push({ type: "resume", session_id: this.sessionId, turn_id: this.turnId, after: this.lastEventId });
    }
    return frames;
  };

  Conversation.prototype.startTurn = function () {
    this.turnId = null;
    this.lastEventId = 0;
    this.turnOpen = true;
    this.answer = "";
  };

  // Milliseconds before reconnect attempt n (0-based): 0.5 s doubling to 15 s, with jitter.
  function backoff(n, random) {
    var base = Math.min(15000, 500 * Math.pow(2, Math.min(n, 5)));
    var r = typeof random === "function" ? random() : Math.random();
    return Math.round(base * (0.75 + 0.5 * r));
  }

  function parseFrame(text) {
    var v;
    try { v = JSON.parse(text); } catch (e) { return null; }
    if (!v || typeof v.event !== "string") return null;
    return v;
  }

  /*
   * The socket protocol over a transport: transport.open(handlers) must open a connection and
   * call handlers.open(), handlers.message(text), handlers.close(); it returns {send(text),
   * close()}. `opts`: {token, conversation, onEvent(ev), setTimer(fn, ms), header: true when
   * the transport sends the token in a header (wx.connectSocket) instead of a first frame}.
   */
  function SocketClient(transport, opts) {
    this.transport = transport;
    this.opts = opts;
    this.conv = opts.conversation || new Conversation();
    this.attempt = 0;
    this.conn = null;
    this.open = false;
    this.closed = false;
    this.queue = [];
  }

  SocketClient.prototype.connect = function () {
    var self = this;
    self.conn = self.transport.open({
      open: function () {
        self.open = true;
        self.attempt = 0;
        if (!self.opts.header) self.conn.send(JSON.stringify({ type: "auth", token: self.opts.token }));
        var frames = self.conv.resumeFrames();
        for (var i = 0; i < frames.length; i++) self.conn.send(JSON.stringify(frames[i]));
        var q = self.queue; self.queue = [];
        for (var j = 0; j < q.length; j++) self.conn.send(q[j]);
      },
      message: function (text) {
        var ev = parseFrame(text);
        if (!ev) return;
        if (ev.event === "session" && ev.data && ev.data.session_id) {
          self.conv.take(ev);
          // Follow counselor events of the new conversation from its start.
          self.conn.send(JSON.stringify({ type: "watch", session_id: ev.data.session_id, after: self.conv.lastSeq }));
          if (self.opts.onEvent) self.opts.onEvent(ev);
          return;
        }
        if (self.conv.take(ev) && self.opts.onEvent) self.opts.onEvent(ev);
      },
      close: function () {
        self.open = false;
        if (self.closed) return;
        var wait = backoff(self.attempt++, self.opts.random);
        (self.opts.setTimer || setTimeout)(function () { if (!self.closed) self.connect(); }, wait);
      }
    });
  };

  SocketClient.prototype.send = function (frame) {
    var text = JSON.stringify(frame);
    if (this.open) this.conn.send(text); else this.queue.push(text);
  };

  // Asks a question (a new conversation when none is known yet).
  SocketClient.prototype.ask = function (message, ref) {
    this.conv.startTurn();
    var frame = { type: "chat", message: message, ref: ref == null ? null : ref };
    if (this.conv.sessionId) frame.session_id = this.conv.sessionId;
    this.send(frame);
  };

  // Drops the connection (network loss); the client reconnects by itself.
  SocketClient.prototype.drop = function () {
    if (this.conn) this.conn.close();
  };

  SocketClient.prototype.stop = function () {
    this.closed = true;
    if (this.conn) this.conn.close();
  };

  // Answer text for display: citation markers [n] kept, as the widget does.
  function sourcesText(citations) {
    var lines = [];
    for (var i = 0; i < (citations || []).length; i++) {
      var c = citations[i];
      lines.push("[" + c.n + "]《" + c.title + "》" + (c.doc_number || "") + (c.section ? " " + c.section : ""));
    }
    return lines.join("\n");
  }

  var api = {
    Utf8Decoder: Utf8Decoder,
    SseParser: SseParser,
    ChunkedStream: ChunkedStream,
    Conversation: Conversation,
    SocketClient: SocketClient,
    backoff: backoff,
    parseFrame: parseFrame,
    sourcesText: sourcesText
  };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.LeyeProtocol = api;
})(this);
