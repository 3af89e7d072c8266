/* The console's only script (the CSP allows no inline script).
 *
 * - A copy button beside the transaction hash; the console works without it.
 * - After a refused post, the proposal's own address replaces ".../approve" in the address bar.
 * - Every message shown is in the page's language: read from data-msg-* on <body>.
 * - Passkeys (WebAuthn): a form with data-passkey-create registers one with the options the
 *   server put in that attribute; a form with data-passkey-sign has the passkey sign the
 *   statement digest in data-challenge. Each puts the browser's answer (base64url fields) in a
 *   hidden input and submits the form; the server verifies it.
 */
(function () {
  "use strict";

  function fromB64url(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function message(name) {
    return document.body.dataset[name] || "";
  }

  function say(form, text, isError) {
    var status = form.querySelector(".passkey-status");
    if (!status) return;
    status.hidden = false;
    status.textContent = text;
    status.className = "passkey-status " + (isError ? "error" : "notice");
  }

  function busy(form, on) {
    form.querySelectorAll("button[type=submit]").forEach(function (button) {
      button.disabled = on;
    });
  }

  function supported(form) {
    if (window.PublicKeyCredential && navigator.credentials) return true;
    say(form, message("msgUnsupported"), true);
    return false;
  }

  function creationOptions(options) {
    return {
      rp: options.rp,
      user: {
        id: fromB64url(options.user.id),
        name: options.user.name,
        displayName: options.user.displayName
      },
      challenge: fromB64url(options.challenge),
      pubKeyCredParams: options.pubKeyCredParams,
      timeout: options.timeout,
      excludeCredentials: (options.excludeCredentials || []).map(function (c) {
        return { type: c.type, id: fromB64url(c.id) };
      }),
      authenticatorSelection: options.authenticatorSelection,
      attestation: options.attestation
    };
  }

  function registerOn(form) {
    form.addEventListener("submit", function (event) {
      var field = form.querySelector("input[name=credential]");
      if (field.value) return;
      event.preventDefault();
      if (!supported(form)) return;
      var options = creationOptions(JSON.parse(form.dataset.passkeyCreate));
      busy(form, true);
      say(form, message("msgConfirmCreate"), false);
      navigator.credentials.create({ publicKey: options }).then(function (credential) {
        var response = credential.response;
        field.value = JSON.stringify({
          id: credential.id,
          rawId: toB64url(credential.rawId),
          type: credential.type,
          response: {
            clientDataJSON: toB64url(response.clientDataJSON),
            attestationObject: toB64url(response.attestationObject),
            transports: response.getTransports ? response.getTransports() : []
          },
          clientExtensionResults: credential.getClientExtensionResults(),
          authenticatorAttachment: credential.authenticatorAttachment || undefined
        });
        form.submit();
      }).catch(function (error) {
        busy(form, false);
        say(form, message("msgNotCreated") + " " + error.message, true);
      });
    });
  }

  function signOn(form) {
    form.addEventListener("submit", function (event) {
      var field = form.querySelector("input[name=assertion]");
      if (field.value) return;
      event.preventDefault();
      if (!supported(form)) return;
      var ids = form.dataset.credentials ? form.dataset.credentials.split(",") : [];
      busy(form, true);
      say(form, message("msgConfirmSign"), false);
      navigator.credentials.get({
        publicKey: {
          challenge: fromB64url(form.dataset.challenge),
          rpId: form.dataset.rpId,
          allowCredentials: ids.map(function (id) {
            return { type: "public-key", id: fromB64url(id) };
          }),
          userVerification: "required",
          timeout: 120000
        }
      }).then(function (assertion) {
        var response = assertion.response;
        field.value = JSON.stringify({
          credential_id: toB64url(assertion.rawId),
          authenticator_data: toB64url(response.authenticatorData),
          client_data_json: toB64url(response.clientDataJSON),
          signature: toB64url(response.signature)
        });
        form.submit();
      }).catch(function (error) {
        busy(form, false);
        say(form, message("msgNotSigned") + " " + error.message, true);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    // A page answering a refused post names the proposal's own address: the address bar shows
    // it, and a reload reads the page instead of posting the form again.
    var address = document.body.dataset.address;
    if (address && window.history && window.location.pathname !== address) {
      window.history.replaceState(null, "", address);
    }
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      var source = document.getElementById(button.dataset.copy);
      if (!source || !navigator.clipboard) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(source.textContent.trim()).then(function () {
          button.textContent = message("msgCopied");
        });
      });
    });
    document.querySelectorAll("form[data-passkey-create]").forEach(registerOn);
    document.querySelectorAll("form[data-passkey-sign]").forEach(signOn);
  });
})();
