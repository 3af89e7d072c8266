/*
 * In-browser inclusion check for the liability sum tree (reporting/SPEC-merkle.md, version 1).
 *
 * The same encodings as reporting/merkle.py, hashed with WebCrypto's SHA-256:
 *   leaf body   = salt (32) || u16 len(id) || id (NFC UTF-8) || u128 amount per asset
 *   leaf hash   = SHA-256(0x01 || 0x11 || leaf body)
 *   node hash   = SHA-256(0x01 || 0x12 || left hash || left sums || right hash || right sums)
 *   empty node  = SHA-256(0x01 || 0x13), all sums zero
 *   root digest = SHA-256(0x01 || 0x14 || u8 A || (u8 len || code)* || u64 count || hash || sums)
 * Amounts are BigInts; nothing is rounded. Nothing leaves the page: no request is made.
 * Exposed as window.ReserveProof so anyone can call it from the console (and tests do).
 */
(function () {
  "use strict";

  var VERSION = 1;
  var TAG = { leaf: 0x11, node: 0x12, empty: 0x13, root: 0x14 };
  var HASH_BYTES = 32;
  var SUM_BYTES = 16;
  var MAX_SUM = (1n << 128n) - 1n;
  var MAX_ID_BYTES = 1024;

  function ProofError(key, detail) {
    this.key = key;
    this.detail = detail || "";
  }

  function concat(parts) {
    var length = parts.reduce(function (n, p) { return n + p.length; }, 0);
    var out = new Uint8Array(length);
    var offset = 0;
    parts.forEach(function (p) { out.set(p, offset); offset += p.length; });
    return out;
  }

  function hexToBytes(text, length, what) {
    if (typeof text !== "string" || !/^([0-9a-fA-F]{2})*$/.test(text)) {
      throw new ProofError("bad_hex", what);
    }
    var out = new Uint8Array(text.length / 2);
    for (var i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
    if (length !== undefined && out.length !== length) throw new ProofError("bad_hex", what);
    return out;
  }

  function bytesToHex(bytes) {
    return Array.prototype.map.call(bytes, function (b) {
      return b.toString(16).padStart(2, "0");
    }).join("");
  }

  function equalBytes(a, b) {
    if (a.length !== b.length) return false;
    for (var i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  function parseAmount(text, what) {
    if (typeof text !== "string" || !/^-?[0-9]+$/.test(text)) throw new ProofError("bad_amount", what);
    return BigInt(text);
  }

  function uint(value, width, what) {
    var v = BigInt(value);
    if (v < 0n) throw new ProofError("negative", what);
    if (v >= (1n << BigInt(8 * width))) throw new ProofError("overflow", what);
    var out = new Uint8Array(width);
    for (var i = width - 1; i >= 0; i--) { out[i] = Number(v & 0xffn); v >>= 8n; }
    return out;
  }

  function sums(values) {
    return concat(values.map(function (v, i) { return uint(v, SUM_BYTES, "sum " + i); }));
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  function depth(count) {
    return count <= 1 ? 0 : (count - 1).toString(2).length;
  }

  function levelSize(count, level) {
    return Math.floor((count - 1) / Math.pow(2, level)) + 1;
  }

  function parseRoot(data) {
    if (!data || data.version !== VERSION) throw new ProofError("bad_version", "root");
    if (data.tree !== "liabilities") throw new ProofError("wrong_tree", "root");
    if (!Array.isArray(data.assets) || !Array.isArray(data.sums) || data.assets.length !== data.sums.length) {
      throw new ProofError("bad_format", "root");
    }
    if (!Number.isSafeInteger(data.leaf_count) || data.leaf_count < 0) throw new ProofError("bad_format", "leaf_count");
    return {
      assets: data.assets,
      leafCount: data.leaf_count,
      nodeHash: hexToBytes(data.node_hash, HASH_BYTES, "node_hash"),
      sums: data.sums.map(function (s, i) { return parseAmount(s, "root sum " + i); }),
      statedDigest: data.digest
    };
  }

  async function rootDigest(root) {
    var enc = new TextEncoder();
    var codes = root.assets.map(function (code) {
      var raw = enc.encode(code);
      return concat([new Uint8Array([raw.length]), raw]);
    });
    return sha256(concat([
      new Uint8Array([VERSION, TAG.root, root.assets.length]),
      concat(codes),
      uint(root.leafCount, 8, "leaf_count"),
      root.nodeHash,
      sums(root.sums)
    ]));
  }

  function accountBytes(accountId) {
    if (typeof accountId !== "string" || accountId.length === 0) throw new ProofError("bad_account");
    if (accountId.normalize("NFC") !== accountId) throw new ProofError("not_nfc");
    var raw = new TextEncoder().encode(accountId);
    if (raw.length > MAX_ID_BYTES) throw new ProofError("bad_account");
    return raw;
  }

  async function leafHash(leaf) {
    var id = accountBytes(leaf.account_id);
    var salt = hexToBytes(leaf.salt, HASH_BYTES, "salt");
    var amounts = leaf.amounts.map(function (a, i) { return parseAmount(a, "amount " + i); });
    var body = concat([salt, uint(id.length, 2, "id length"), id, sums(amounts)]);
    return { hash: await sha256(concat([new Uint8Array([VERSION, TAG.leaf]), body])), sums: amounts };
  }

  /* Fold a leaf up its proof to the root, as verify_path does; throws ProofError on any failure. */
  async function verifyLeaf(rootData, leaf, proof) {
    var root = parseRoot(rootData);
    var digest = await rootDigest(root);
    if (root.statedDigest !== undefined && root.statedDigest !== bytesToHex(digest)) {
      throw new ProofError("root_digest");
    }
    if (!proof || proof.version !== VERSION || proof.tree !== "liabilities" || !Array.isArray(proof.siblings)) {
      throw new ProofError("bad_format", "proof");
    }
    if (!Array.isArray(leaf.amounts) || leaf.amounts.length !== root.assets.length) {
      throw new ProofError("amount_count");
    }
    var index = proof.leaf_index;
    if (!Number.isSafeInteger(index) || index < 0 || index >= root.leafCount) throw new ProofError("bad_index");
    if (proof.siblings.length !== depth(root.leafCount)) throw new ProofError("bad_depth");
    var empty = await sha256(new Uint8Array([VERSION, TAG.empty]));
    var current = await leafHash(leaf);
    var position = index;
    for (var level = 0; level < proof.siblings.length; level++) {
      var item = proof.siblings[level];
      var sibling = {
        hash: hexToBytes(item.hash, HASH_BYTES, "sibling hash"),
        sums: (item.sums || []).map(function (s) { return parseAmount(s, "sibling sum"); })
      };
      if (sibling.sums.length !== root.assets.length) throw new ProofError("bad_format", "sibling sums");
      sibling.sums.forEach(function (s) {
        if (s < 0n) throw new ProofError("negative", "level " + level);
        if (s > MAX_SUM) throw new ProofError("overflow", "level " + level);
      });
      if ((position ^ 1) >= levelSize(root.leafCount, level) &&
          !(equalBytes(sibling.hash, empty) && sibling.sums.every(function (s) { return s === 0n; }))) {
        throw new ProofError("bad_padding", "level " + level);
      }
      var left = position % 2 === 0 ? current : sibling;
      var right = position % 2 === 0 ? sibling : current;
      var added = left.sums.map(function (s, i) { return s + right.sums[i]; });
      added.forEach(function (s) { if (s > MAX_SUM) throw new ProofError("overflow", "level " + (level + 1)); });
      current = {
        hash: await sha256(concat([
          new Uint8Array([VERSION, TAG.node]), left.hash, sums(left.sums), right.hash, sums(right.sums)
        ])),
        sums: added
      };
      position = Math.floor(position / 2);
    }
    if (!equalBytes(current.hash, root.nodeHash)) throw new ProofError("root_hash");
    for (var i = 0; i < root.sums.length; i++) {
      if (current.sums[i] !== root.sums[i]) throw new ProofError("totals");
    }
    return { digest: bytesToHex(digest), assets: root.assets, amounts: leaf.amounts };
  }

  /* An account's package {version, root, leaf, proof}, checked against an attestation's root. */
  async function verifyPackage(pkg, anchoredRoot) {
    if (!pkg || pkg.version !== VERSION || !pkg.root || !pkg.leaf || !pkg.proof) {
      throw new ProofError("bad_format", "package");
    }
    if (anchoredRoot) {
      var anchored = bytesToHex(await rootDigest(parseRoot(anchoredRoot)));
      var given = bytesToHex(await rootDigest(parseRoot(pkg.root)));
      if (anchored !== given) throw new ProofError("other_root");
    }
    return verifyLeaf(pkg.root, pkg.leaf, pkg.proof);
  }

  /* Account id + salt: find the published entry and check it, as `treasury verify --leaf --salt`. */
  async function verifyAccount(attestation, accountId, saltHex) {
    var found = attestation.listing.filter(function (e) { return e.leaf.account_id === accountId; });
    if (found.length === 0) throw new ProofError("not_published");
    var entry = found[0];
    if (entry.leaf.salt.toLowerCase() !== String(saltHex).trim().toLowerCase()) {
      throw new ProofError("other_salt");
    }
    return verifyLeaf(attestation.root, entry.leaf, entry.proof);
  }

  window.ReserveProof = {
    verifyLeaf: verifyLeaf,
    verifyPackage: verifyPackage,
    verifyAccount: verifyAccount,
    leafHash: async function (leaf) { return bytesToHex((await leafHash(leaf)).hash); },
    rootDigest: async function (rootData) { return bytesToHex(await rootDigest(parseRoot(rootData))); },
    ProofError: ProofError
  };

  /* --- the page ------------------------------------------------------------------------- */

  var dataNode = document.getElementById("verifier-data");
  if (!dataNode) return;
  var attestations = JSON.parse(dataNode.textContent);
  var messages = JSON.parse(document.getElementById("verifier-messages").textContent);
  var result = document.getElementById("result");
  var select = document.getElementById("attestation");

  function message(key, fields) {
    var text = messages[key] || messages.failed;
    Object.keys(fields || {}).forEach(function (name) { text = text.split("{" + name + "}").join(fields[name]); });
    return text;
  }

  function chosen() {
    var sequence = Number(select.value);
    return attestations.filter(function (a) { return a.sequence === sequence; })[0];
  }

  function show(verdict, heading, lines) {
    result.dataset.verdict = verdict;
    result.className = "verdict verdict-" + (verdict === "valid" ? "verified" : "failed");
    result.replaceChildren();
    var h = document.createElement("p");
    var strong = document.createElement("strong");
    strong.textContent = heading;
    h.appendChild(strong);
    result.appendChild(h);
    lines.forEach(function (line) {
      var p = document.createElement("p");
      p.textContent = line;
      result.appendChild(p);
    });
  }

  function report(promise, accountLabel) {
    var attestation = chosen();
    promise.then(function (outcome) {
      var amounts = outcome.assets.map(function (asset, i) { return asset + " " + outcome.amounts[i]; });
      show("valid", message("valid"), [
        message("valid_detail", { account: accountLabel(), sequence: String(attestation.sequence) }),
        message("amounts", { amounts: amounts.join(", ") }),
        message("root", { digest: outcome.digest })
      ]);
    }, function (error) {
      var key = error instanceof ProofError ? error.key : "bad_format";
      show("invalid", message("invalid"), [message("reason." + key, { detail: error.detail || "" })]);
    });
  }

  document.getElementById("account-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var account = document.getElementById("account-id").value.normalize("NFC").trim();
    var salt = document.getElementById("salt").value.trim();
    report(verifyAccount(chosen(), account, salt), function () { return account; });
  });

  function readPackage() {
    var file = document.getElementById("proof-file").files[0];
    if (file) return file.text();
    return Promise.resolve(document.getElementById("proof-text").value);
  }

  document.getElementById("package-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var accountName = "";
    var checked = readPackage().then(function (text) {
      var pkg;
      try { pkg = JSON.parse(text); } catch (e) { throw new ProofError("not_json"); }
      accountName = pkg && pkg.leaf ? String(pkg.leaf.account_id) : "";
      return verifyPackage(pkg, chosen().root);
    });
    report(checked, function () { return accountName; });
  });
})();
