/*
 * In-browser inclusion check for the liability sum tree (reporting/SPEC-merkle.md, version 1).
 *
 * The same encodings as reporting/merkle.py, hashed with WebCrypto's SHA-256:
 *   leaf body   = salt (32) || u16 len(id) || id (NFC UTF-8) || u128 amount per asset
 *   leaf hash   = SHA-256(0x01 || 0x11 || leaf body)
 *   node hash   = SHA-256(0x01 || 0x12 || left hash || left sums || right hash || right sums)
 *   empty node  = SHA-256(0x01 || 0x13), all sums zero
 *   root digest = SHA-256(0x01 || 0x14 || u8 A || (u8 len || code)* || u64 count || hash || sums)
 * Amounts are BigInts; nothing is rounded.
 *
 * The JSON is read as strictly as the auditor's verifier reads it (SPEC-attestation R-GRAM-1 to
 * R-GRAM-3, SPEC-merkle R-PKG-1 and R-ROOT-2): every amount and sum is a decimal string in its
 * one spelling (0|[1-9][0-9]*; a leading minus parses only so a negative value is named as
 * such), every hash and salt is 64 lowercase hex digits, the root's asset codes are 1-64
 * printable ASCII characters in strictly ascending order, and a field the format does not
 * define is refused rather than ignored at every level of a package: an unsigned note beside
 * the proof (an "issued_to", say) would otherwise be shown as if it were part of it. A file the
 * verifier refuses is refused here too, so the two never tell a holder different things.
 * Errors name the field by its JSON path in the file (leaf.amounts[0]), which reads the same in
 * every language of the page.
 *
 * Three ways in, one check: a proof package file (as `treasury proofs issue` writes it and the
 * holder downloads it), an account id with the holder's code, or a published account's id.
 * Only the id + code form makes a request: it POSTs {attestation, account_id, code} to the
 * treasury's /holders/proof address fixed when the site was published (data-api), and the
 * package that comes back is checked here exactly like a file, against the root of the bundle
 * selected on this page; the server is not trusted. Nothing else leaves the page.
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
  var MAX_ASSETS = 255;
  var SHOWN_CHARS = 60;

  /* The fields each object of a package may hold (SPEC-merkle; the verifier's *_FIELDS). */
  var PACKAGE_FIELDS = ["version", "attestation", "root", "leaf", "proof"];
  var LABEL_FIELDS = ["sequence", "digest"];
  var ROOT_FIELDS = ["version", "tree", "assets", "leaf_count", "node_hash", "sums", "digest"];
  var LEAF_FIELDS = ["account_id", "amounts", "salt"];
  var PROOF_FIELDS = ["version", "tree", "leaf_index", "siblings"];
  var SIBLING_FIELDS = ["hash", "sums"];

  var DECIMAL = /^-?(0|[1-9][0-9]*)$/;
  var HASH_HEX = /^[0-9a-f]{64}$/;
  var ASSET_CODE = /^[\x21-\x7e]{1,64}$/;

  /* key: the message (js.reason.<key>); detail: the field's JSON path; value: what it holds. */
  function ProofError(key, detail, value) {
    this.key = key;
    this.detail = detail || "";
    this.value = value === undefined ? "" : value;
  }

  function concat(parts) {
    var length = parts.reduce(function (n, p) { return n + p.length; }, 0);
    var out = new Uint8Array(length);
    var offset = 0;
    parts.forEach(function (p) { out.set(p, offset); offset += p.length; });
    return out;
  }

  /* A value as JSON, cut short: an error shows what the file holds without flooding the page. */
  function shown(value) {
    var text = JSON.stringify(value);
    if (text === undefined) text = String(value);
    return text.length > SHOWN_CHARS ? text.slice(0, SHOWN_CHARS - 1) + "…" : text;
  }

  function at(where, name) {
    return where ? where + "." + name : name;
  }

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  var KINDS = {
    string: function (v) { return typeof v === "string"; },
    array: Array.isArray,
    object: isObject,
    integer: Number.isSafeInteger
  };

  /* data[name], present and of the JSON kind asked (an integer is never a boolean or a string). */
  function field(data, name, kind, where) {
    if (!isObject(data) || !Object.prototype.hasOwnProperty.call(data, name)) {
      throw new ProofError("missing", at(where, name));
    }
    if (!KINDS[kind](data[name])) throw new ProofError("bad_format", at(where, name));
    return data[name];
  }

  /* Refuse a field the format does not define (R-GRAM-1), naming the first in sorted order. */
  function knownFields(data, allowed, where) {
    if (!isObject(data)) return;
    var unknown = Object.keys(data).filter(function (name) { return allowed.indexOf(name) < 0; }).sort();
    if (unknown.length > 0) throw new ProofError("unknown_field", at(where, unknown[0].slice(0, SHOWN_CHARS)));
  }

  function checkVersion(data, where) {
    var version = field(data, "version", "integer", where);
    if (version !== VERSION) throw new ProofError("bad_version", at(where, "version"), shown(version));
  }

  /* A hash or salt: exactly 32 bytes in 64 lowercase hex digits (R-GRAM-3). */
  function hashBytes(text, where) {
    if (typeof text !== "string" || !HASH_HEX.test(text)) throw new ProofError("bad_hex", where);
    var out = new Uint8Array(HASH_BYTES);
    for (var i = 0; i < HASH_BYTES; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
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

  /* A decimal in its one spelling (R-GRAM-2); "-7" parses so the range check can call it negative. */
  function parseAmount(text, where) {
    if (typeof text !== "string" || !DECIMAL.test(text) || text === "-0") {
      throw new ProofError("bad_amount", where, shown(text));
    }
    return BigInt(text);
  }

  function amounts(list, where) {
    return list.map(function (text, i) { return parseAmount(text, where + "[" + i + "]"); });
  }

  function uint(value, width, where) {
    var v = BigInt(value);
    if (v < 0n) throw new ProofError("negative", where);
    if (v >= (1n << BigInt(8 * width))) throw new ProofError("overflow", where);
    var out = new Uint8Array(width);
    for (var i = width - 1; i >= 0; i--) { out[i] = Number(v & 0xffn); v >>= 8n; }
    return out;
  }

  function sums(values, where) {
    return concat(values.map(function (v, i) { return uint(v, SUM_BYTES, where + "[" + i + "]"); }));
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

  /* R-ROOT-2: codes of 1-64 printable ASCII characters, strictly ascending (so none repeats).
   * For ASCII, comparing JavaScript strings is comparing their bytes. */
  function checkAssets(codes, where) {
    if (codes.length > MAX_ASSETS) throw new ProofError("bad_format", where);
    codes.forEach(function (code, i) {
      if (typeof code !== "string" || !ASSET_CODE.test(code)) {
        throw new ProofError("asset_code", where + "[" + i + "]", shown(code));
      }
    });
    for (var i = 1; i < codes.length; i++) {
      if (!(codes[i - 1] < codes[i])) throw new ProofError("asset_order", where, shown(codes));
    }
    return codes;
  }

  function parseRoot(data) {
    knownFields(data, ROOT_FIELDS, "root");
    checkVersion(data, "root");
    if (field(data, "tree", "string", "root") !== "liabilities") throw new ProofError("wrong_tree", "root.tree");
    var assets = checkAssets(field(data, "assets", "array", "root"), "root.assets");
    var leafCount = field(data, "leaf_count", "integer", "root");
    if (leafCount < 0) throw new ProofError("bad_format", "root.leaf_count");
    var nodeHash = hashBytes(field(data, "node_hash", "string", "root"), "root.node_hash");
    var rootSums = amounts(field(data, "sums", "array", "root"), "root.sums");
    if (rootSums.length !== assets.length) throw new ProofError("bad_format", "root.sums");
    var stated;
    if (isObject(data) && Object.prototype.hasOwnProperty.call(data, "digest")) {
      stated = bytesToHex(hashBytes(field(data, "digest", "string", "root"), "root.digest"));
    }
    return { assets: assets, leafCount: leafCount, nodeHash: nodeHash, sums: rootSums, statedDigest: stated };
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
      uint(root.leafCount, 8, "root.leaf_count"),
      root.nodeHash,
      sums(root.sums, "root.sums")
    ]));
  }

  function accountBytes(accountId) {
    if (typeof accountId !== "string" || accountId.length === 0) throw new ProofError("bad_account");
    if (accountId.normalize("NFC") !== accountId) throw new ProofError("not_nfc");
    var raw = new TextEncoder().encode(accountId);
    if (raw.length > MAX_ID_BYTES) throw new ProofError("bad_account");
    return raw;
  }

  function parseLeaf(data) {
    knownFields(data, LEAF_FIELDS, "leaf");
    return {
      id: accountBytes(field(data, "account_id", "string", "leaf")),
      amounts: amounts(field(data, "amounts", "array", "leaf"), "leaf.amounts"),
      salt: hashBytes(field(data, "salt", "string", "leaf"), "leaf.salt")
    };
  }

  async function leafHash(data) {
    var leaf = parseLeaf(data);
    var body = concat([
      leaf.salt, uint(leaf.id.length, 2, "leaf.account_id"), leaf.id, sums(leaf.amounts, "leaf.amounts")
    ]);
    return { hash: await sha256(concat([new Uint8Array([VERSION, TAG.leaf]), body])), sums: leaf.amounts };
  }

  function parseProof(data) {
    knownFields(data, PROOF_FIELDS, "proof");
    checkVersion(data, "proof");
    if (field(data, "tree", "string", "proof") !== "liabilities") throw new ProofError("wrong_tree", "proof.tree");
    var index = field(data, "leaf_index", "integer", "proof");
    var siblings = field(data, "siblings", "array", "proof").map(function (item, level) {
      var where = "proof.siblings[" + level + "]";
      knownFields(item, SIBLING_FIELDS, where);
      return {
        hash: hashBytes(field(item, "hash", "string", where), where + ".hash"),
        sums: amounts(field(item, "sums", "array", where), where + ".sums")
      };
    });
    return { index: index, siblings: siblings };
  }

  /* Fold a leaf up its proof to the root, as verify_path does; throws ProofError on any failure. */
  async function verifyLeaf(rootData, leafData, proofData) {
    var root = parseRoot(rootData);
    var digest = await rootDigest(root);
    if (root.statedDigest !== undefined && root.statedDigest !== bytesToHex(digest)) {
      throw new ProofError("root_digest");
    }
    var current = await leafHash(leafData);
    var proof = parseProof(proofData);
    if (current.sums.length !== root.assets.length) throw new ProofError("amount_count");
    var index = proof.index;
    if (index < 0 || index >= root.leafCount) throw new ProofError("bad_index");
    if (proof.siblings.length !== depth(root.leafCount)) throw new ProofError("bad_depth");
    var empty = await sha256(new Uint8Array([VERSION, TAG.empty]));
    var position = index;
    for (var level = 0; level < proof.siblings.length; level++) {
      var where = "proof.siblings[" + level + "]";
      var sibling = proof.siblings[level];
      if (sibling.sums.length !== root.assets.length) throw new ProofError("bad_format", where + ".sums");
      sibling.sums.forEach(function (s, i) {
        if (s < 0n) throw new ProofError("negative", where + ".sums[" + i + "]");
        if (s > MAX_SUM) throw new ProofError("overflow", where + ".sums[" + i + "]");
      });
      if ((position ^ 1) >= levelSize(root.leafCount, level) &&
          !(equalBytes(sibling.hash, empty) && sibling.sums.every(function (s) { return s === 0n; }))) {
        throw new ProofError("bad_padding", where);
      }
      var left = position % 2 === 0 ? current : sibling;
      var right = position % 2 === 0 ? sibling : current;
      var added = left.sums.map(function (s, i) { return s + right.sums[i]; });
      added.forEach(function (s) { if (s > MAX_SUM) throw new ProofError("overflow", where); });
      current = {
        hash: await sha256(concat([
          new Uint8Array([VERSION, TAG.node]),
          left.hash, sums(left.sums, where + ".sums"), right.hash, sums(right.sums, where + ".sums")
        ])),
        sums: added
      };
      position = Math.floor(position / 2);
    }
    if (!equalBytes(current.hash, root.nodeHash)) throw new ProofError("root_hash");
    for (var i = 0; i < root.sums.length; i++) {
      if (current.sums[i] !== root.sums[i]) throw new ProofError("totals");
    }
    return { digest: bytesToHex(digest), assets: root.assets, amounts: leafData.amounts };
  }

  /* The optional label {sequence, digest} naming the bundle a package was issued for. It only
   * chooses the bundle (the check is against the chosen bundle's root), but it is spelt strictly. */
  function checkLabel(pkg) {
    if (!Object.prototype.hasOwnProperty.call(pkg, "attestation")) return;
    var label = field(pkg, "attestation", "object", "");
    knownFields(label, LABEL_FIELDS, "attestation");
    if (field(label, "sequence", "integer", "attestation") < 1) {
      throw new ProofError("bad_format", "attestation.sequence");
    }
    hashBytes(field(label, "digest", "string", "attestation"), "attestation.digest");
  }

  /* An account's package {version, attestation?, root, leaf, proof}, checked against an
   * attestation's root (R-PKG-1), in the verifier's order: version, then the fields of every
   * level, then the anchored root, then the fold. */
  async function verifyPackage(pkg, anchoredRoot) {
    if (!isObject(pkg)) throw new ProofError("not_package");
    checkVersion(pkg, "");
    knownFields(pkg, PACKAGE_FIELDS, "");
    var parts = { root: ROOT_FIELDS, leaf: LEAF_FIELDS, proof: PROOF_FIELDS };
    Object.keys(parts).forEach(function (name) { knownFields(field(pkg, name, "object", ""), parts[name], name); });
    checkLabel(pkg);
    var given = parseRoot(pkg.root);
    if (anchoredRoot) {
      var anchored = bytesToHex(await rootDigest(parseRoot(anchoredRoot)));
      if (anchored !== bytesToHex(await rootDigest(given))) throw new ProofError("other_root");
    }
    return verifyLeaf(pkg.root, pkg.leaf, pkg.proof);
  }

  /* A published account: find its entry in the listing and check it; a salt, if given, must match. */
  async function verifyAccount(attestation, accountId, saltHex) {
    var found = attestation.listing.filter(function (e) { return e.leaf.account_id === accountId; });
    if (found.length === 0) throw new ProofError("not_published");
    var entry = found[0];
    var typed = String(saltHex || "").trim().toLowerCase();
    if (typed !== "" && entry.leaf.salt.toLowerCase() !== typed) {
      throw new ProofError("other_salt");
    }
    return verifyLeaf(attestation.root, entry.leaf, entry.proof);
  }

  /* Ask the treasury for a holder's package with their code; the answer is checked by the caller. */
  async function fetchPackage(api, sequence, accountId, code) {
    var response;
    try {
      response = await fetch(api, {
        method: "POST",
        headers: { "Content-Type": "text/plain" },
        body: JSON.stringify({ attestation: sequence, account_id: accountId, code: code }),
        cache: "no-store",
        credentials: "omit",
        referrerPolicy: "no-referrer"
      });
    } catch (e) {
      throw new ProofError("api_unreachable");
    }
    if (response.status === 401 || response.status === 403) throw new ProofError("code_refused");
    if (response.status === 404) throw new ProofError("no_package");
    if (!response.ok) throw new ProofError("api_failed", String(response.status));
    var pkg;
    try { pkg = await response.json(); } catch (e) { throw new ProofError("not_json"); }
    if (!pkg || !pkg.leaf || pkg.leaf.account_id !== accountId) throw new ProofError("other_account");
    return pkg;
  }

  window.ReserveProof = {
    verifyLeaf: verifyLeaf,
    verifyPackage: verifyPackage,
    verifyAccount: verifyAccount,
    fetchPackage: fetchPackage,
    leafHash: async function (leaf) { return bytesToHex((await leafHash(leaf)).hash); },
    rootDigest: async function (rootData) { return bytesToHex(await rootDigest(parseRoot(rootData))); },
    ProofError: ProofError
  };

  /* --- the page ------------------------------------------------------------------------- */

  var dataNode = document.getElementById("verifier-data");
  if (!dataNode) return;
  var attestations = JSON.parse(dataNode.textContent);
  var messages = JSON.parse(document.getElementById("verifier-messages").textContent);
  var unitsNode = document.getElementById("verifier-units");
  var units = unitsNode ? JSON.parse(unitsNode.textContent) : {};

  /* Base units (a string of digits) as whole coins with every significant decimal, in the page's
   * number marks, with the asset's symbol; the scale comes from the published asset registry.
   * Done on strings: a wei amount does not fit a JavaScript number. */
  function coins(asset, base) {
    var unit = units[asset];
    if (!unit || unit.decimals === null || !/^[0-9]+$/.test(base)) return null;
    var digits = base.replace(/^0+(?=.)/, "");
    var scale = unit.decimals;
    var padded = digits.length <= scale ? "0".repeat(scale - digits.length + 1) + digits : digits;
    var whole = padded.slice(0, padded.length - scale);
    var fraction = padded.slice(padded.length - scale).replace(/0+$/, "");
    whole = whole.replace(/\B(?=(\d{3})+(?!\d))/g, unit.group);
    return whole + (fraction ? unit.point + fraction : "") + "\u00a0" + unit.label;
  }
  var result = document.getElementById("result");
  var select = document.getElementById("attestation");

  /* Fields that quote the file or a hash: set in <code> that wraps anywhere, so a field name or
   * value is never read as part of the sentence and a long one does not widen a phone's page. */
  var QUOTED_FIELDS = ["detail", "value", "digest"];

  /* A message as DOM nodes, its {name} fields filled in one pass (a field's own text that looks
   * like {name} stays as written: a file can hold anything), never parsed as HTML. */
  function message(key, fields) {
    var given = fields || {};
    var template = messages[key] || messages.failed;
    var nodes = [];
    var last = 0;
    template.replace(/\{([a-z_]+)\}/g, function (whole, name, offset) {
      if (!Object.prototype.hasOwnProperty.call(given, name)) return whole;
      nodes.push(document.createTextNode(template.slice(last, offset)));
      var text = String(given[name]);
      if (QUOTED_FIELDS.indexOf(name) >= 0 && text !== "") {
        var code = document.createElement("code");
        code.className = "hash";
        code.textContent = text;
        nodes.push(code);
      } else {
        nodes.push(document.createTextNode(text));
      }
      last = offset + whole.length;
      return whole;
    });
    nodes.push(document.createTextNode(template.slice(last)));
    return nodes;
  }

  function chosen() {
    var sequence = Number(select.value);
    return attestations.filter(function (a) { return a.sequence === sequence; })[0];
  }

  function show(verdict, heading, lines) {
    result.dataset.verdict = verdict;
    var shade = { valid: " verdict-verified", invalid: " verdict-failed" }[verdict] || "";
    result.className = "verdict" + shade;
    result.replaceChildren();
    var h = document.createElement("p");
    var strong = document.createElement("strong");
    strong.append.apply(strong, heading);
    h.appendChild(strong);
    result.appendChild(h);
    lines.forEach(function (line) {
      var p = document.createElement("p");
      p.append.apply(p, line);
      result.appendChild(p);
    });
    /* Bring the result into view once it is known (on a phone it sits above the forms, which a
     * reader has scrolled past to fill in). */
    if (verdict !== "pending" && result.scrollIntoView) result.scrollIntoView({ block: "start" });
  }

  /* Refusals of the treasury's server: nothing was checked, so the heading does not say INVALID. */
  var FETCH_ERRORS = ["api_unreachable", "code_refused", "no_package", "api_failed"];

  /* Refusals of a file's spelling (R-GRAM): the treasury never writes these, so the holder is told
   * what that means and what to do, not only which field is wrong. */
  var FORMAT_ERRORS = [
    "not_json", "not_package", "missing", "unknown_field", "bad_format", "bad_version", "bad_hex",
    "bad_amount", "asset_code", "asset_order"
  ];

  /* fromFile: the package came from the holder's file (not the treasury's server), so a
   * malformed one is explained as a changed file. */
  function report(promise, accountLabel, fromFile) {
    promise.then(function (outcome) {
      var attestation = chosen();
      var base = outcome.assets.map(function (asset, i) { return asset + " " + outcome.amounts[i]; });
      var whole = outcome.assets.map(function (asset, i) {
        return coins(asset, String(outcome.amounts[i])) || base[i];
      });
      show("valid", message("valid"), [
        message("valid_detail", { account: accountLabel(), sequence: String(attestation.sequence) }),
        message("amounts", { amounts: whole.join(", ") }),
        message("amounts_base", { amounts: base.join(", ") }),
        message("root", { digest: outcome.digest })
      ]);
    }, function (error) {
      if (!(error instanceof ProofError)) {
        show("invalid", message("invalid"), [message("failed")]);
        return;
      }
      var heading = FETCH_ERRORS.indexOf(error.key) >= 0 ? "not_fetched" : "invalid";
      var lines = [message("reason." + error.key, { detail: error.detail, value: error.value })];
      if (fromFile && FORMAT_ERRORS.indexOf(error.key) >= 0) lines.push(message("format_hint"));
      show("invalid", message(heading), lines);
    });
  }

  document.getElementById("account-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var account = document.getElementById("account-id").value.normalize("NFC").trim();
    var salt = document.getElementById("salt").value.trim();
    report(verifyAccount(chosen(), account, salt), function () { return account; });
  });

  var codeForm = document.getElementById("code-form");
  codeForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var account = document.getElementById("code-account-id").value.normalize("NFC").trim();
    var code = document.getElementById("code").value.trim();
    var attestation = chosen();
    show("pending", message("fetching"), []);
    var checked = fetchPackage(codeForm.dataset.api, attestation.sequence, account, code)
      .then(function (pkg) { return verifyPackage(pkg, attestation.root); });
    report(checked, function () { return account; });
  });

  function readPackage() {
    var file = document.getElementById("proof-file").files[0];
    if (file) return file.text();
    return Promise.resolve(document.getElementById("proof-text").value);
  }

  /* A package names the attestation it was issued for: select that one if this site lists it. */
  function selectLabelled(pkg) {
    var label = pkg && pkg.attestation ? pkg.attestation.sequence : undefined;
    if (!Number.isSafeInteger(label)) return;
    var listed = attestations.some(function (a) { return a.sequence === label; });
    if (listed) select.value = String(label);
  }

  document.getElementById("package-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var accountName = "";
    var checked = readPackage().then(function (text) {
      var pkg;
      try { pkg = JSON.parse(text); } catch (e) { throw new ProofError("not_json"); }
      accountName = pkg && pkg.leaf ? String(pkg.leaf.account_id) : "";
      selectLabelled(pkg);
      return verifyPackage(pkg, chosen().root);
    });
    report(checked, function () { return accountName; }, true);
  });
})();
