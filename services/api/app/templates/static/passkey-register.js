// pyauth: adding a passkey on the hosted account security page (/account/security).
//
// Progressive enhancement: the add form is hidden in the page and shown here only when the browser has
// WebAuthn. On submit it asks the page's options endpoint (a same-origin form POST with the CSRF token)
// for the PublicKeyCredentialCreationOptionsJSON, turns its base64url fields into bytes, lets
// navigator.credentials.create() make the credential, writes the RegistrationResponseJSON into the form's
// hidden `credential` field and submits the form, which the server verifies. No eval, no inline script.
(function () {
  "use strict";

  var form = document.getElementById("passkey-add");
  if (!form || !window.PublicKeyCredential || !navigator.credentials || !window.fetch) {
    return;
  }
  var errorBox = document.getElementById("passkey-error");
  var unsupported = document.getElementById("passkey-unsupported");
  var button = form.querySelector("button[type=submit]");
  if (unsupported) {
    unsupported.hidden = true;
  }
  form.hidden = false;

  function toBytes(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    base64 += "===".slice((base64.length + 3) % 4);
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) {
      binary += String.fromCharCode(bytes[i]);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBytes(json.challenge);
    options.user = Object.assign({}, json.user, { id: toBytes(json.user.id) });
    options.excludeCredentials = (json.excludeCredentials || []).map(function (descriptor) {
      return Object.assign({}, descriptor, { id: toBytes(descriptor.id) });
    });
    return options;
  }

  function registrationJSON(credential) {
    var response = credential.response;
    return {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: {
        clientDataJSON: toText(response.clientDataJSON),
        attestationObject: toText(response.attestationObject),
        transports: typeof response.getTransports === "function" ? response.getTransports() : [],
      },
    };
  }

  function fail(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
    button.disabled = false;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    errorBox.hidden = true;
    button.disabled = true;
    var body = new URLSearchParams();
    body.set("csrf_token", form.elements.csrf_token.value);
    fetch(form.dataset.options, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        return response.json().then(function (answer) {
          if (!response.ok) {
            throw new Error(answer.message || form.dataset.failed);
          }
          return answer;
        });
      })
      .then(function (options) {
        return navigator.credentials.create({ publicKey: creationOptions(options) }).catch(function () {
          throw new Error(form.dataset.cancelled);
        });
      })
      .then(function (credential) {
        if (!credential) {
          throw new Error(form.dataset.cancelled);
        }
        form.elements.credential.value = JSON.stringify(registrationJSON(credential));
        form.submit(); // no submit event: straight to the server
      })
      .catch(function (error) {
        fail(error && error.message ? error.message : form.dataset.failed);
      });
  });
})();
