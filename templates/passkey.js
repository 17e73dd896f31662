// Passkey and security key ceremonies (WebAuthn). Served as a file of the
// module's own, as the pages' Content-Security-Policy allows no inline
// script; it needs "connect-src 'self'" for the options request.
//
// A page offers a ceremony with a button of one of the ids below inside a
// form like this one:
//
//   <form method="post" action="…/setup/passkey" data-passkey-options="…/setup/passkey/options">
//     <input type="hidden" name="csrf" value="…">
//     <input type="hidden" name="credential">
//     <input name="name">                          (optional: the passkey's name)
//     <p data-passkey-nojs>Passkeys need JavaScript.</p>
//     <p class="alert" role="alert" data-passkey-error hidden></p>
//     <button type="button" id="passkey-register" disabled>…</button>
//   </form>
//
// The button asks the server for the options (a POST of the form's csrf,
// current and stepup fields to data-passkey-options, answered with JSON),
// hands them to the browser, and sends the browser's answer in the
// credential field with an ordinary submission of the form, so the server
// answers with a page as it does for every other form. Without JavaScript
// the button stays disabled and the data-passkey-nojs text says why.
//
// A form with data-passkey-stepup="URL" first confirms the user with a
// passkey they have (options from that URL), and sends that answer in its
// stepup field with the options request: the account page adds a passkey
// only behind a fresh second factor.
(function () {
  "use strict";

  // Which browser call each button makes.
  var ceremonies = {
    "passkey-register": "create",
    "passkey-add": "create",
    "passkey-signin": "get",
    "passkey-login": "get",
    "passkey-verify": "get"
  };

  // base64url (no padding) <-> ArrayBuffer, as WebAuthn's JSON spells
  // binary values.
  function toBuffer(s) {
    var b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var bin = atob(b64);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buf) {
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      var copy = Object.assign({}, d);
      copy.id = toBuffer(d.id);
      return copy;
    });
  }

  // publicKeyOptions turns the server's JSON into what the browser takes.
  function publicKeyOptions(kind, json) {
    var o = Object.assign({}, json.publicKey);
    o.challenge = toBuffer(o.challenge);
    if (kind === "create") {
      o.user = Object.assign({}, o.user, { id: toBuffer(o.user.id) });
      o.excludeCredentials = descriptors(o.excludeCredentials);
    } else {
      o.allowCredentials = descriptors(o.allowCredentials);
    }
    return o;
  }

  // answer is the browser's credential as the JSON the server parses.
  function answer(kind, cred) {
    var r = cred.response;
    var out = {
      id: cred.id,
      rawId: toBase64url(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: toBase64url(r.clientDataJSON) }
    };
    if (kind === "create") {
      out.response.attestationObject = toBase64url(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = toBase64url(r.authenticatorData);
      out.response.signature = toBase64url(r.signature);
      out.response.userHandle = r.userHandle ? toBase64url(r.userHandle) : null;
    }
    return out;
  }

  // The words of each browser error, in the page's language: the error
  // box's data attributes carry them (templates/layout.html), and these
  // English ones stand in for a page that lacks them.
  var errorNames = {
    NotAllowedError: ["cancelled", "The request was cancelled or timed out. Try again when you are ready."],
    InvalidStateError: ["registered", "This security key or passkey is already registered for your account."],
    SecurityError: ["wrongOrigin", "This address is not one the site's passkeys are set up for."],
    NotSupportedError: ["unsupported", "This browser or authenticator does not support the kind of passkey the site asks for."],
    AbortError: ["aborted", "The request was cancelled."]
  };

  function words(box, name, english) {
    return (box && box.dataset[name]) || english;
  }

  // message says in words what went wrong, without the browser's jargon.
  function message(box, err) {
    var known = err && errorNames[err.name];
    if (known) return words(box, known[0], known[1]);
    return (err && err.serverMessage) || words(box, "failed", "Something went wrong with the passkey. Reload the page and try again.");
  }

  function fetchOptions(form, url) {
    var body = new URLSearchParams();
    ["csrf", "current", "stepup"].forEach(function (name) {
      var field = form.elements[name];
      if (field && field.value) body.set(name, field.value);
    });
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Accept": "application/json" },
      body: body
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (json) {
        if (!resp.ok || !json.publicKey) {
          var err = new Error("options request failed: " + resp.status);
          err.serverMessage = json.error;
          throw err;
        }
        return json;
      });
    });
  }

  function setUp(id) {
    var button = document.getElementById(id);
    if (!button || !button.form || !button.form.dataset.passkeyOptions) return;
    var kind = ceremonies[id];
    var form = button.form;
    var errorBox = form.querySelector("[data-passkey-error]");
    var showError = function (text) {
      if (!errorBox) return;
      errorBox.textContent = text;
      errorBox.hidden = !text;
    };
    form.querySelectorAll("[data-passkey-nojs]").forEach(function (el) { el.hidden = true; });
    if (!window.PublicKeyCredential || !navigator.credentials) {
      showError(words(errorBox, "noPasskeys", "This browser cannot use passkeys or security keys."));
      return;
    }
    button.disabled = false;
    var busy = false;
    button.addEventListener("click", function () {
      if (busy) return;
      busy = true;
      button.disabled = true;
      showError("");
      var stepUp = Promise.resolve();
      if (form.dataset.passkeyStepup) {
        stepUp = fetchOptions(form, form.dataset.passkeyStepup).then(function (json) {
          return navigator.credentials.get({ publicKey: publicKeyOptions("get", json) });
        }).then(function (cred) {
          if (!cred) throw new Error("no credential");
          form.elements.stepup.value = JSON.stringify(answer("get", cred));
        });
      }
      stepUp.then(function () {
        return fetchOptions(form, form.dataset.passkeyOptions);
      }).then(function (json) {
        var publicKey = publicKeyOptions(kind, json);
        return kind === "create"
          ? navigator.credentials.create({ publicKey: publicKey })
          : navigator.credentials.get({ publicKey: publicKey });
      }).then(function (cred) {
        if (!cred) throw new Error("no credential");
        form.elements.credential.value = JSON.stringify(answer(kind, cred));
        form.submit();
      }).catch(function (err) {
        if (form.elements.stepup) form.elements.stepup.value = "";
        showError(message(errorBox, err));
        busy = false;
        button.disabled = false;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Object.keys(ceremonies).forEach(setUp);
  });
})();
