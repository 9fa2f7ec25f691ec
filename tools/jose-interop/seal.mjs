// Seal with panva/jose what schemas/sealed.py must open (wire format version 1): encrypt a
// JSON object to the recipients' X25519 keys (ECDH-ES+A256KW / A256GCM), bind the envelope in
// both protected headers, sign with the sender's Ed25519 key, and print the JWS as JSON.
//
//   node seal.mjs input.json        (or the JSON on stdin)
//   input: {plaintext, envelope, sender_private_jwk, recipient_public_jwks: [...],
//           jws_form?: "general" | "flattened", jwe_form?: "general" | "flattened"}
//
// This is how jose writes it, not how we would: with one recipient it puts the ephemeral key
// (`epk`) in the JWE protected header, which RFC 7516 allows.
import { readFileSync } from 'node:fs';
import * as jose from 'jose';

const input = JSON.parse(readFileSync(process.argv[2] ?? 0, 'utf8'));
const { plaintext, envelope, sender_private_jwk: senderJwk, recipient_public_jwks: recipients } = input;
const bound = { inb: 1, ce: envelope, crit: ['inb', 'ce'] };
const encoder = new TextEncoder();
const CRIT = { crit: { inb: true, ce: true } }; // jose must be told it understands these

let jwe;
if (input.jwe_form === 'flattened') {
  const [jwk] = recipients;
  jwe = await new jose.FlattenedEncrypt(encoder.encode(JSON.stringify(plaintext)))
    .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', cty: 'json', ...bound })
    .setUnprotectedHeader({ kid: await jose.calculateJwkThumbprint(jwk, 'sha256') })
    .encrypt(await jose.importJWK(jwk, 'ECDH-ES+A256KW'), CRIT);
} else {
  const general = new jose.GeneralEncrypt(encoder.encode(JSON.stringify(plaintext)))
    .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', cty: 'json', ...bound });
  for (const jwk of recipients) {
    general
      .addRecipient(await jose.importJWK(jwk, 'ECDH-ES+A256KW'), CRIT)
      .setUnprotectedHeader({ kid: await jose.calculateJwkThumbprint(jwk, 'sha256') });
  }
  jwe = await general.encrypt();
}

const signingKey = await jose.importJWK(senderJwk, 'Ed25519');
const header = {
  alg: 'Ed25519',
  kid: await jose.calculateJwkThumbprint(senderJwk, 'sha256'),
  cty: 'jose+json',
  ...bound,
};
const payload = encoder.encode(JSON.stringify(jwe));
let jws;
if (input.jws_form === 'flattened') {
  jws = await new jose.FlattenedSign(payload).setProtectedHeader(header).sign(signingKey, CRIT);
} else {
  const general = new jose.GeneralSign(payload);
  general.addSignature(signingKey, CRIT).setProtectedHeader(header);
  jws = await general.sign();
}
process.stdout.write(JSON.stringify(jws));
