// Moat's ID tokens verified by a generic OIDC library (jose 5) through Moat's discovery
// document and JWKS, and by google-auth-library's own verifier through the PEM certs. Tokens
// come from the OAuth2 jwt-bearer grant (an assertion signed with jose from a key file, the
// way Google's libraries build it) and from IAM Credentials generateIdToken.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import {after, before, describe, it} from 'node:test';

import {OAuth2Client} from 'google-auth-library';
import {google} from 'googleapis';
import {
  SignJWT, createRemoteJWKSet, decodeProtectedHeader, importPKCS8, jwtVerify,
} from 'jose';

import {addBinding, atRevision, call, revisionOf, startMoat} from './harness.mjs';

const PROJECT = 'jose-compat';
const ACCOUNT_ID = 'jose-signer';
const SA_EMAIL = `${ACCOUNT_ID}@${PROJECT}.iam.gserviceaccount.com`;
const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

// The assertion google-auth (python) / gtoken (node) send to a token endpoint (GOOGLE.md §8).
async function assertionFor(keyFile, claims, {aud = GOOGLE_TOKEN_URL, lifetime = 3600} = {}) {
  const key = await importPKCS8(keyFile.private_key, 'RS256');
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(claims)
      .setProtectedHeader({alg: 'RS256', typ: 'JWT', kid: keyFile.private_key_id})
      .setIssuer(keyFile.client_email)
      .setAudience(aud)
      .setIssuedAt(now)
      .setExpirationTime(now + lifetime)
      .sign(key);
}

async function postToken(tokenUrl, assertion) {
  const res = await fetch(tokenUrl, {
    method: 'POST',
    headers: {'Content-Type': 'application/x-www-form-urlencoded'},
    body: new URLSearchParams({grant_type: JWT_BEARER, assertion}).toString(),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return {status: res.status, headers: res.headers, text, json};
}

describe('ID tokens verified with jose', () => {
  let moat;
  let keyFile;  // the jose-signer account's key file (parsed)
  let uniqueId;
  let jwks;
  let iam;
  let iamcredentials;
  let adminEmail;

  before(async () => {
    moat = await startMoat();
    const auth = new google.auth.GoogleAuth({keyFile: moat.keyFile});
    adminEmail = JSON.parse(fs.readFileSync(moat.keyFile, 'utf8')).client_email;
    const rootUrl = moat.api + '/';
    iam = google.iam({version: 'v1', rootUrl, auth});
    iamcredentials = google.iamcredentials({version: 'v1', rootUrl, auth});
    const sa = await call(() => iam.projects.serviceAccounts.create({
      name: `projects/${PROJECT}`, requestBody: {accountId: ACCOUNT_ID},
    }));
    uniqueId = sa.data.uniqueId;
    const key = await call(() => iam.projects.serviceAccounts.keys.create({
      name: sa.data.name, requestBody: {},
    }));
    keyFile = JSON.parse(Buffer.from(key.data.privateKeyData, 'base64').toString('utf8'));
    jwks = createRemoteJWKSet(new URL(moat.api + '/oauth2/v3/certs'));
  });

  after(async () => {
    await moat?.stop();
  });

  it('publishes an OpenID configuration naming its issuer and JWKS', async () => {
    const res = await fetch(moat.api + '/.well-known/openid-configuration');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^application\/json/);
    const conf = await res.json();
    assert.equal(conf.issuer, moat.api);
    assert.equal(conf.jwks_uri, moat.api + '/oauth2/v3/certs');
    assert.ok(conf.id_token_signing_alg_values_supported.includes('RS256'));
    for (const c of ['aud', 'email', 'email_verified', 'exp', 'iat', 'iss', 'sub']) {
      assert.ok(conf.claims_supported?.includes(c), `claims_supported has ${c}`);
    }
    const certs = await fetch(conf.jwks_uri);
    assert.equal(certs.status, 200);
    const set = await certs.json();
    assert.ok(set.keys.length >= 1);
    for (const k of set.keys) {
      assert.equal(k.kty, 'RSA');
      assert.equal(k.alg, 'RS256');
      assert.equal(k.use, 'sig');
      assert.ok(k.kid && k.n && k.e);
      assert.equal(k.d, undefined, 'no private parts');
    }
  });

  for (const [label, audFor] of [
    ['Google\'s token URL', () => GOOGLE_TOKEN_URL],
    ['the key file\'s token_uri', () => keyFile.token_uri],
  ]) {
    it(`jwt-bearer grant with aud = ${label} → an ID token jose verifies`, async () => {
      const audience = 'https://backend.example.test';
      const assertion = await assertionFor(keyFile, {target_audience: audience},
                                           {aud: audFor()});
      const res = await postToken(keyFile.token_uri, assertion);
      assert.equal(res.status, 200, `POST ${keyFile.token_uri} → ${res.status} ${res.text}`);
      assert.ok(res.json?.id_token, `id_token in ${res.text}`);

      const {payload, protectedHeader} = await jwtVerify(res.json.id_token, jwks, {
        issuer: moat.api, audience, algorithms: ['RS256'],
      });
      assert.equal(protectedHeader.alg, 'RS256');
      assert.equal(protectedHeader.typ, 'JWT');
      assert.ok(protectedHeader.kid);
      assert.equal(payload.iss, moat.api);
      assert.equal(payload.aud, audience);
      assert.equal(payload.sub, uniqueId);
      assert.equal(payload.azp, uniqueId);
      assert.equal(payload.email, SA_EMAIL);
      assert.equal(payload.email_verified, true);
      assert.equal(typeof payload.iat, 'number');
      assert.ok(payload.exp > payload.iat && payload.exp - payload.iat <= 3600);
      assert.ok(Math.abs(payload.iat - Date.now() / 1000) < 300, 'iat is now');
    });
  }

  it('a scope assertion returns a bearer access token the API accepts', async () => {
    const assertion = await assertionFor(
        keyFile, {scope: 'https://www.googleapis.com/auth/cloud-platform'});
    const res = await postToken(keyFile.token_uri, assertion);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.token_type, 'Bearer');
    assert.ok(res.json.access_token);
    assert.ok(res.json.expires_in > 0 && res.json.expires_in <= 3600);
    // The token authenticates: reading the account is 403 PERMISSION_DENIED (it holds no role
    // on itself), where the same call without a token is 401 UNAUTHENTICATED.
    const url = `${moat.api}/v1/projects/${PROJECT}/serviceAccounts/${SA_EMAIL}`;
    const withToken = await fetch(url, {headers: {authorization: `Bearer ${res.json.access_token}`}});
    const withBody = await withToken.text();
    assert.equal(withToken.status, 403, `GET ${url} (Bearer access token) → ${withBody}`);
    assert.equal(JSON.parse(withBody).error.status, 'PERMISSION_DENIED');
    const anon = await fetch(url);
    const anonBody = await anon.text();
    assert.equal(anon.status, 401, `GET ${url} (no token) → ${anonBody}`);
    assert.equal(JSON.parse(anonBody).error.status, 'UNAUTHENTICATED');
  });

  it('testIamPermissions without a credential is 401 UNAUTHENTICATED (docs/api.md)', async () => {
    // Google's APIs answer every unauthenticated call with 401; docs/api.md says the same for
    // every Moat API call except the public discovery/token endpoints.
    const url = `${moat.api}/v1/projects/${PROJECT}/serviceAccounts/${SA_EMAIL}:testIamPermissions`;
    const anon = await fetch(url, {
      method: 'POST', headers: {'content-type': 'application/json'},
      body: JSON.stringify({permissions: ['iam.serviceAccounts.get']}),
    });
    const body = await anon.text();
    assert.equal(anon.status, 401, `POST ${url} (no Authorization) → ${anon.status} ${body}`);
    assert.equal(JSON.parse(body).error.status, 'UNAUTHENTICATED');
  });

  it('refuses bad assertions with OAuth errors', async () => {
    const audience = 'https://backend.example.test';
    // Foreign audience.
    const wrongAud = await assertionFor(keyFile, {target_audience: audience},
                                        {aud: 'https://elsewhere.example/token'});
    const r1 = await postToken(keyFile.token_uri, wrongAud);
    assert.equal(r1.status, 400, r1.text);
    assert.equal(r1.json?.error, 'invalid_grant', r1.text);
    // Tampered signature.
    const good = await assertionFor(keyFile, {target_audience: audience});
    const [h, p, s] = good.split('.');
    const flipped = s.slice(0, -2) + (s.at(-2) === 'A' ? 'B' : 'A') + s.at(-1);
    const r2 = await postToken(keyFile.token_uri, `${h}.${p}.${flipped}`);
    assert.equal(r2.status, 400, r2.text);
    assert.equal(r2.json?.error, 'invalid_grant', r2.text);
    // Lifetime over one hour.
    const long = await assertionFor(keyFile, {target_audience: audience}, {lifetime: 7200});
    const r3 = await postToken(keyFile.token_uri, long);
    assert.equal(r3.status, 400, r3.text);
    assert.equal(r3.json?.error, 'invalid_grant', r3.text);
  });

  it('generateIdToken output verifies with jose and with google-auth-library PEM certs',
     async () => {
       const resource = `projects/${PROJECT}/serviceAccounts/${SA_EMAIL}`;
       const current = await call(() => iam.projects.serviceAccounts.getIamPolicy({resource}));
       const set = await call(() => iam.projects.serviceAccounts.setIamPolicy({
         resource,
         requestBody: {policy: addBinding(current.data, 'roles/iam.serviceAccountTokenCreator',
                                          `serviceAccount:${adminEmail}`)},
       }));
       const audience = 'https://verify.example.test/path';
       const minted = await call(() => iamcredentials.projects.serviceAccounts.generateIdToken({
         name: `projects/-/serviceAccounts/${SA_EMAIL}`,
         requestBody: {audience, includeEmail: true},
       }, atRevision(revisionOf(set))));
       const token = minted.data.token;

       const {payload, protectedHeader} = await jwtVerify(token, jwks, {issuer: moat.api, audience});
       assert.deepEqual(
           {alg: protectedHeader.alg, typ: protectedHeader.typ, hasKid: !!protectedHeader.kid},
           {alg: 'RS256', typ: 'JWT', hasKid: true});
       assert.equal(payload.sub, uniqueId);
       assert.equal(payload.azp, uniqueId);
       assert.equal(payload.email, SA_EMAIL);
       assert.equal(payload.email_verified, true);
       assert.ok(payload.exp - payload.iat <= 3600);

       // The wrong audience and a foreign issuer are refused.
       await assert.rejects(jwtVerify(token, jwks, {issuer: moat.api, audience: 'https://other'}),
                            {code: 'ERR_JWT_CLAIM_VALIDATION_FAILED'});
       await assert.rejects(
           jwtVerify(token, jwks, {issuer: 'https://accounts.google.com', audience}),
           {code: 'ERR_JWT_CLAIM_VALIDATION_FAILED'});

       // google-auth-library's verifier with Moat's PEM map (/oauth2/v1/certs) and issuer.
       const pem = await (await fetch(moat.api + '/oauth2/v1/certs')).json();
       assert.ok(pem[protectedHeader.kid], 'the PEM map has the token\'s kid');
       const ticket = await new OAuth2Client().verifySignedJwtWithCertsAsync(
           token, pem, audience, [moat.api]);
       assert.equal(ticket.getPayload().email, SA_EMAIL);
       assert.equal(decodeProtectedHeader(token).kid, protectedHeader.kid);
     });
});
