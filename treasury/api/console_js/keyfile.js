// The console's key-file signing form (keyfile_sign.html): an officer without a passkey approves
// or vetoes with their key file. The file and passphrase are read here and never posted: on
// submit the statement's digest is recomputed from the text the page shows, the key is opened
// (scrypt, MAC check, AES-128-CTR), the digest is signed, the key bytes are wiped, and only the
// signature and the public key go into the form. The CSP forbids inline script, so everything
// this script needs (digest, messages) is in data- attributes.

import {
  KeyFileError, bytesToHex, hexBytes, openKeyFile, parseKeyFile, signDigest, statementDigest,
} from "./keystore.js";

function say(box, text, kind) {
  box.hidden = false;
  box.textContent = text;
  box.dataset.state = kind;
}

function message(fieldset, code) {
  const names = {
    "wrong-passphrase": "msgWrongPassphrase",
    "not-key-file": "msgNotKeyFile",
    "key-mismatch": "msgKeyMismatch",
    "digest-mismatch": "msgDigestMismatch",
    "no-file": "msgNoFile",
  };
  return fieldset.dataset[names[code] || "msgFailed"] || fieldset.dataset.msgFailed;
}

async function signForm(form, fieldset) {
  const box = fieldset.querySelector("[data-keyfile-status]");
  const fileInput = fieldset.querySelector("[data-keyfile-file]");
  const passInput = fieldset.querySelector("[data-keyfile-passphrase]");
  const button = fieldset.querySelector("[data-keyfile-submit]");
  const statement = form.querySelector("input[name=statement]");
  const file = fileInput.files && fileInput.files[0];
  if (!file) throw new KeyFileError("no-file", "No key file chosen.");
  const digest = hexBytes(fieldset.dataset.digest, 32, "The digest");
  const computed = statementDigest(statement.value);
  if (bytesToHex(computed) !== bytesToHex(digest)) {
    throw new KeyFileError("digest-mismatch", "The statement does not hash to the digest shown.");
  }
  const document = parseKeyFile(await file.text());
  button.disabled = true;
  const progress = fieldset.dataset.msgProgress || "";
  say(box, progress.replace("{percent}", "0"), "working");
  let secret;
  try {
    secret = await openKeyFile(document, passInput.value, (fraction) => {
      say(box, progress.replace("{percent}", String(Math.floor(fraction * 100))), "working");
    });
    const signature = signDigest(secret, digest);
    form.querySelector("input[name=key_signature]").value = JSON.stringify({
      kind: "secp256k1", signature: bytesToHex(signature),
    });
    form.querySelector("input[name=key_public]").value = document.public_key.toLowerCase();
  } finally {
    if (secret) secret.fill(0);
    button.disabled = false;
  }
  passInput.value = "";
  say(box, fieldset.dataset.msgSigned || "", "done");
  HTMLFormElement.prototype.submit.call(form);
}

function attach(form) {
  const fieldset = form.querySelector("[data-keyfile]");
  if (!fieldset || form.dataset.keyfileReady) return;
  form.dataset.keyfileReady = "yes";
  let busy = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (busy) return;
    busy = true;
    const box = fieldset.querySelector("[data-keyfile-status]");
    signForm(form, fieldset).catch((error) => {
      const code = error instanceof KeyFileError ? error.code : "failed";
      say(box, message(fieldset, code), "error");
      box.setAttribute("role", "alert");
    }).finally(() => { busy = false; });
  });
}

function start() {
  document.querySelectorAll("form[data-keyfile-sign]").forEach(attach);
}

if (!window.nationalReserveKeyFile) {
  window.nationalReserveKeyFile = true;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
}
