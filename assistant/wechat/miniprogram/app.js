// Login: wx.login's code goes to our server (never to WeChat from here); the server answers
// with its own token. The openid stays on the server.
var config = require("./config.js");

App({
  globalData: { token: "", baseUrl: config.baseUrl },

  login: function () {
    var self = this;
    return new Promise(function (resolve, reject) {
      var saved = wx.getStorageSync("leye_token");
      if (saved) { self.globalData.token = saved; resolve(saved); return; }
      wx.login({
        success: function (r) {
          wx.request({
            url: config.baseUrl + "/api/v1/miniprogram/login",
            method: "POST",
            data: { code: r.code },
            success: function (res) {
              if (res.statusCode === 200 && res.data.token) {
                self.globalData.token = res.data.token;
                wx.setStorageSync("leye_token", res.data.token);
                resolve(res.data.token);
              } else {
                reject(res.data && res.data.error ? res.data.error.message : "登录失败");
              }
            },
            fail: function () { reject("网络不可用"); }
          });
        },
        fail: function () { reject("微信登录失败"); }
      });
    });
  },

  // A 401 means the token expired: log in again once.
  forgetToken: function () {
    this.globalData.token = "";
    wx.removeStorageSync("leye_token");
  }
});
