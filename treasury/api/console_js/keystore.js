// An officer's key file opened and used in the browser, exactly as custody/authority/key_file.py
// and custody/authority/secp256k1.py do it in Python, so the key never leaves the officer's machine.
//
// The file is {"format": "national-reserve/officer-key/1", "public_key": "<33-byte hex>",
// "keystore": <Web3 Secret Storage V3>}: the passphrase is stretched with scrypt (or PBKDF2),
// the keccak-256 MAC over derived[16:32] || ciphertext tells a wrong passphrase from a right one
// BEFORE anything is decrypted, and the key is AES-128-CTR encrypted under derived[0:16].
// Signing is RFC 6979 deterministic ECDSA with low S over the 32-byte statement digest, written as
// 65 bytes r || s || v (v the recovery id 0/1): byte for byte what libsecp256k1 gives in Python.
// Only audited libraries do the cryptography (@noble/hashes, @noble/curves, @noble/ciphers).

import { ctr } from "@noble/ciphers/aes.js";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { pbkdf2Async } from "@noble/hashes/pbkdf2.js";
import { scryptAsync } from "@noble/hashes/scrypt.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { bytesToHex, hexToBytes, utf8ToBytes } from "@noble/hashes/utils.js";

export const KEY_FILE_FORMAT = "national-reserve/officer-key/1";
export const STATEMENT_DOMAIN_TAG = "national-reserve/approval-statement/v1\u0000";

/** Why a key file could not be used; `code` names the reason for the page's message. */
export class KeyFileError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function hex(value, bytes, what) {
  if (typeof value !== "string") throw new KeyFileError("malformed", `${what} is missing.`);
  const clean = value.startsWith("0x") ? value.slice(2) : value;
  if (!/^[0-9a-fA-F]*$/.test(clean) || clean.length % 2 || (bytes && clean.length !== 2 * bytes)) {
    throw new KeyFileError("malformed", `${what} is not ${bytes || "whole"}-byte hex.`);
  }
  return hexToBytes(clean.toLowerCase());
}

function constantTimeEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** Parse the text of a key file; refuse anything that is not an officer key file. */
export function parseKeyFile(text) {
  let document;
  try {
    document = JSON.parse(text);
  } catch {
    throw new KeyFileError("not-key-file", "The file is not JSON.");
  }
  if (
    !document || typeof document !== "object" || document.format !== KEY_FILE_FORMAT
    || typeof document.public_key !== "string" || !document.keystore
    || typeof document.keystore !== "object"
  ) {
    throw new KeyFileError("not-key-file", `The file is not an officer key file (${KEY_FILE_FORMAT}).`);
  }
  return document;
}

async function deriveKey(crypto, passphrase, onProgress) {
  const params = crypto.kdfparams || {};
  // eth_account encodes the passphrase as UTF-8 with no normalisation: so do we.
  const password = utf8ToBytes(passphrase);
  const salt = hex(params.salt, 0, "The keystore's salt");
  const dkLen = params.dklen;
  if (dkLen !== 32) throw new KeyFileError("malformed", "The keystore's dklen must be 32.");
  if (crypto.kdf === "scrypt") {
    const { n, r, p } = params;
    if (![n, r, p].every(Number.isSafeInteger)) {
      throw new KeyFileError("malformed", "The keystore's scrypt parameters are not integers.");
    }
    return scryptAsync(password, salt, { N: n, r, p, dkLen, onProgress, maxmem: 2 ** 31 });
  }
  if (crypto.kdf === "pbkdf2") {
    if (params.prf !== "hmac-sha256" || !Number.isSafeInteger(params.c)) {
      throw new KeyFileError("malformed", "Only PBKDF2 with hmac-sha256 is supported.");
    }
    onProgress && onProgress(0);
    const key = await pbkdf2Async(sha256, password, salt, { c: params.c, dkLen });
    onProgress && onProgress(1);
    return key;
  }
  throw new KeyFileError("malformed", `Unknown key derivation ${crypto.kdf}.`);
}

/**
 * Open a parsed key file with its passphrase: the 32-byte private key (the caller wipes it).
 * A wrong passphrase fails the MAC check (code "wrong-passphrase") and nothing is decrypted.
 */
export async function openKeyFile(document, passphrase, onProgress) {
  const crypto = document.keystore.crypto || document.keystore.Crypto;
  if (!crypto || crypto.cipher !== "aes-128-ctr") {
    throw new KeyFileError("malformed", "The keystore is not AES-128-CTR encrypted.");
  }
  const ciphertext = hex(crypto.ciphertext, 0, "The keystore's ciphertext");
  const iv = hex(crypto.cipherparams && crypto.cipherparams.iv, 16, "The keystore's iv");
  const mac = hex(crypto.mac, 32, "The keystore's MAC");
  const derived = await deriveKey(crypto, passphrase, onProgress);
  const macInput = new Uint8Array(16 + ciphertext.length);
  macInput.set(derived.subarray(16, 32));
  macInput.set(ciphertext, 16);
  if (!constantTimeEqual(keccak_256(macInput), mac)) {
    derived.fill(0);
    throw new KeyFileError("wrong-passphrase", "MAC mismatch: the passphrase does not open this key file.");
  }
  const secret = ctr(derived.slice(0, 16), iv).decrypt(ciphertext);
  derived.fill(0);
  if (secret.length !== 32) {
    secret.fill(0);
    throw new KeyFileError("malformed", "The decrypted key is not 32 bytes.");
  }
  const recorded = hex(document.public_key, 33, "The key file's public key");
  let publicKey;
  try {
    publicKey = secp256k1.getPublicKey(secret, true);
  } catch {
    secret.fill(0);
    throw new KeyFileError("malformed", "The decrypted key is not a valid secp256k1 key.");
  }
  if (!constantTimeEqual(publicKey, recorded)) {
    secret.fill(0);
    throw new KeyFileError("key-mismatch", "The key does not match the public key the file records.");
  }
  return secret;
}

/** SHA-256(domain tag || canonical statement text): the digest an approval statement is signed by. */
export function statementDigest(canonicalText) {
  const tag = utf8ToBytes(STATEMENT_DOMAIN_TAG);
  const body = utf8ToBytes(canonicalText);
  const message = new Uint8Array(tag.length + body.length);
  message.set(tag);
  message.set(body, tag.length);
  return sha256(message);
}

/** Sign a 32-byte digest: 65 bytes r || s || v, low S, RFC 6979 (no extra entropy). */
export function signDigest(secret, digest) {
  if (digest.length !== 32) throw new KeyFileError("malformed", "Only a 32-byte digest is signed.");
  // noble's "recovered" form is v || r || s; custody's is r || s || v.
  const recovered = secp256k1.sign(digest, secret, {
    prehash: false, lowS: true, format: "recovered", extraEntropy: false,
  });
  const signature = new Uint8Array(65);
  signature.set(recovered.subarray(1, 65));
  signature[64] = recovered[0];
  return signature;
}

export { bytesToHex, hex as hexBytes };
