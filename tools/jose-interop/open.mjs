// Independent check of Inbeeld's sealed wire format (schemas/sealed.py, version 1) with
// panva/jose: verify the sender's Ed25519 JWS, check the envelope binding in both protected
// headers, decrypt the JWE (ECDH-ES+A256KW / A256GCM) and print the plaintext to stdout.
//
//   node open.mjs input.json        (or the JSON on stdin)
//   input: {sealed, recipient_private_jwk, sender_public_jwk,
//           envelope: {id, type, source, recipients, subject?, correlationid?}}
//
// jose >= 6 knows the RFC 9864 fully-specified JWS alg "Ed25519" (lib/jws_algorithms.js), so
// no EdDSA fallback is needed. Exit 0 with the plaintext, or exit 1 with a reason on stderr.
import { readFileSync } from 'node:fs';
import * as jose from 'jose';

const WIRE_VERSION = 1;
const CRIT = { inb: true, ce: true }; // we understand these critical headers

function fail(message) {
  process.stderr.write(`refused: ${message}\n`);
  process.exit(1);
}

function checkHeader(header, envelope, layer) {
  if (header.inb !== WIRE_VERSION) fail(`${layer}: unsupported wire version ${header.inb}`);
  const crit = [...(header.crit ?? [])].sort();
  if (JSON.stringify(crit) !== JSON.stringify(['ce', 'inb'])) fail(`${layer}: inb/ce not critical`);
  // id, type, source, recipients, and subject / correlationid when the envelope has them
  if (canonical(header.ce ?? {}) !== canonical(envelope)) fail(`${layer}: bound to another envelope`);
}

function canonical(binding) {
  const names = ['id', 'type', 'source', 'recipients', 'subject', 'correlationid'];
  if (Object.keys(binding).some((name) => !names.includes(name))) return 'unknown member';
  return JSON.stringify(names.map((name) => binding[name] ?? null));
}

const input = JSON.parse(readFileSync(process.argv[2] ?? 0, 'utf8'));
const { sealed, recipient_private_jwk: recipientJwk, sender_public_jwk: senderJwk, envelope } = input;

let verified;
try {
  const senderKey = await jose.importJWK(senderJwk, 'Ed25519');
  verified = await jose.generalVerify(sealed, senderKey, { algorithms: ['Ed25519'], crit: CRIT });
} catch (err) {
  fail(`signature: ${err.code ?? err.name}`);
}
checkHeader(verified.protectedHeader, envelope, 'JWS');
if (verified.protectedHeader.kid !== (await jose.calculateJwkThumbprint(senderJwk, 'sha256'))) {
  fail('JWS: kid is not the sender key thumbprint');
}

const payload = new TextDecoder().decode(verified.payload);
if (verified.protectedHeader.cty === 'json') {
  process.stdout.write(payload); // signed only
  process.exit(0);
}
if (verified.protectedHeader.cty !== 'jose+json') fail('JWS: unexpected cty');

let opened;
try {
  const recipientKey = await jose.importJWK(recipientJwk, 'ECDH-ES+A256KW');
  opened = await jose.generalDecrypt(JSON.parse(payload), recipientKey, {
    keyManagementAlgorithms: ['ECDH-ES+A256KW'],
    contentEncryptionAlgorithms: ['A256GCM'],
    crit: CRIT,
  });
} catch (err) {
  fail(`decryption: ${err.code ?? err.name}`);
}
checkHeader(opened.protectedHeader, envelope, 'JWE');
process.stdout.write(opened.plaintext);
