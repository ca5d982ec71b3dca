// Where `leye serve` is reachable. WeChat only talks to an HTTPS/WSS domain registered in the
// admin console (开发管理 → 服务器域名); in DevTools, "不校验合法域名" allows http://127.0.0.1.
module.exports = {
  baseUrl: "http://127.0.0.1:8080",
  // The subscribe-message template for "a counselor replied" (same as
  // wechat.miniprogram.subscribe_template_id on the server); empty: not asked.
  subscribeTemplateId: ""
};
