// pyauth: signing in with a passkey on the hosted pages (progressive enhancement; no inline script, no eval).
//
// Every form with `data-passkey-options` is a passkey form: on submit, this script POSTs the form's own
// fields (its CSRF token, and on the second page its mfa_token) to that same-origin URL, which answers
// PublicKeyCredentialRequestOptionsJSON; it lets the authenticator answer (navigator.credentials.get),
// puts the AuthenticationResponseJSON into the form's hidden `credential` field and submits the form.
// A form marked `data-passkey-optional` (the passwordless one) stays hidden where WebAuthn is missing.
// A failure (cancelled, no passkey, refused options) shows the page's `data-passkey-failed` message.
(function () {
  "use strict";

  var supported = typeof window.PublicKeyCredential === "function" && !!navigator.credentials;

  function toBytes(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    var padded = base64 + "===".slice((base64.length + 3) % 4);
    var binary = atob(padded);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function requestOptions(json) {
    var options = {
      challenge: toBytes(json.challenge),
      timeout: json.timeout,
      rpId: json.rpId,
      userVerification: json.userVerification,
      allowCredentials: (json.allowCredentials || []).map(function (descriptor) {
        var allowed = { type: descriptor.type, id: toBytes(descriptor.id) };
        if (descriptor.transports) allowed.transports = descriptor.transports;
        return allowed;
      }),
    };
    return options;
  }

  function responseJSON(credential) {
    var response = credential.response;
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: {
        clientDataJSON: toBase64url(response.clientDataJSON),
        authenticatorData: toBase64url(response.authenticatorData),
        signature: toBase64url(response.signature),
        userHandle: response.userHandle ? toBase64url(response.userHandle) : null,
      },
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
    };
  }

  function showFailure() {
    var message = document.querySelector("[data-passkey-failed]");
    if (message) {
      message.hidden = false;
      message.focus();
    }
  }

  function useForm(form) {
    var credentialField = form.querySelector('input[name="credential"]');
    var button = form.querySelector("button");
    var busy = false;

    form.addEventListener("submit", function (event) {
      if (!supported || !credentialField || credentialField.value) return; // the form as it is
      event.preventDefault();
      if (busy) return;
      busy = true;
      if (button) button.disabled = true;
      var fields = new URLSearchParams();
      new FormData(form).forEach(function (value, name) {
        if (name !== "credential" && typeof value === "string") fields.append(name, value);
      });
      fetch(form.getAttribute("data-passkey-options"), {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
        body: fields.toString(),
      })
        .then(function (answer) {
          if (!answer.ok) throw new Error("passkey options refused: " + answer.status);
          return answer.json();
        })
        .then(function (json) {
          return navigator.credentials.get({ publicKey: requestOptions(json) });
        })
        .then(function (credential) {
          if (!credential) throw new Error("no passkey chosen");
          credentialField.value = JSON.stringify(responseJSON(credential));
          form.submit(); // no submit event: straight to the server
        })
        .catch(function () {
          busy = false;
          if (button) button.disabled = false;
          showFailure();
        });
    });
  }

  function start() {
    var forms = document.querySelectorAll("form[data-passkey-options]");
    for (var i = 0; i < forms.length; i++) {
      if (forms[i].hasAttribute("data-passkey-optional")) {
        if (!supported) continue;
        forms[i].hidden = false;
      }
      useForm(forms[i]);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
