// Google's `googleapis` Node client (v148, with its own google-auth-library 9) against Moat's
// API: Cloud Run Admin v2 services and IAM, IAM v1 service accounts and keys, Resource Manager
// project policies and IAM Credentials generateIdToken. Every client authenticates the way
// `googleapis` does with a key file and no scopes: a self-signed JWT whose `aud` is the full
// request URL without its query (GOOGLE.md "Moat's choice").

import assert from 'node:assert/strict';
import fs from 'node:fs';
import {after, before, describe, it} from 'node:test';

import {google} from 'googleapis';

import {
  addBinding, atRevision, call, decodeJwt, expectGoogleError, removeTempFile, revisionOf,
  startMoat, writeTempFile,
} from './harness.mjs';

const PROJECT = 'node-compat';
const LOCATION = 'us-central1';
const PARENT = `projects/${PROJECT}/locations/${LOCATION}`;
const SERVICE = `${PARENT}/services/hello`;
const ACCOUNT_ID = 'node-runner';
const SA_EMAIL = `${ACCOUNT_ID}@${PROJECT}.iam.gserviceaccount.com`;

describe('googleapis against moat serve', () => {
  let moat;
  let adminKey;
  let auth;
  let run;
  let iam;
  let crm;
  let iamcredentials;
  let saKeyFile;
  const tempFiles = [];

  before(async () => {
    moat = await startMoat();
    adminKey = JSON.parse(fs.readFileSync(moat.keyFile, 'utf8'));
    const rootUrl = moat.api + '/';
    auth = new google.auth.GoogleAuth({keyFile: moat.keyFile});
    run = google.run({version: 'v2', rootUrl, auth});
    iam = google.iam({version: 'v1', rootUrl, auth});
    crm = google.cloudresourcemanager({version: 'v1', rootUrl, auth});
    iamcredentials = google.iamcredentials({version: 'v1', rootUrl, auth});
  });

  after(async () => {
    for (const f of tempFiles) removeTempFile(f);
    await moat?.stop();
  });

  it('bootstrapped admin key file is a Google service-account key file', () => {
    assert.equal(adminKey.type, 'service_account');
    assert.match(adminKey.client_email, /^[a-z][-a-z0-9]*@[-a-z0-9]+\.iam\.gserviceaccount\.com$/);
    assert.match(adminKey.private_key, /^-----BEGIN (RSA )?PRIVATE KEY-----\n/);
    assert.ok(adminKey.private_key_id, 'private_key_id');
    assert.equal(adminKey.token_uri, moat.api + '/token');
  });

  it('creates a service (Operation) and gets it', async () => {
    const created = await call(() => run.projects.locations.services.create({
      parent: PARENT,
      serviceId: 'hello',
      requestBody: {template: {upstream: 'http://127.0.0.1:9'}},
    }));
    assert.equal(created.status, 200);
    const op = created.data;
    assert.match(op.name, new RegExp(`^${PARENT}/operations/.+`));
    assert.equal(op.done, true);
    assert.equal(op.error, undefined);
    assert.equal(op.response['@type'], 'type.googleapis.com/google.cloud.run.v2.Service');
    assert.equal(op.response.name, SERVICE);

    const got = await call(() => run.projects.locations.services.get({name: SERVICE}));
    const svc = got.data;
    assert.equal(svc.name, SERVICE);
    assert.equal(typeof svc.generation, 'string', 'generation is an int64 → JSON string');
    assert.match(svc.generation, /^[1-9][0-9]*$/);
    assert.match(svc.uid, /^[0-9a-f-]{36}$/);
    assert.match(svc.uri, /^http:\/\/hello-[0-9a-f]{10}\.us-central1\.run\.localhost:[0-9]+$/);
    assert.ok(Array.isArray(svc.urls) && svc.urls.includes(svc.uri), 'urls lists uri');
    assert.equal(svc.template.upstream, 'http://127.0.0.1:9');
    assert.ok(svc.etag, 'etag');
    assert.ok(svc.createTime && !Number.isNaN(Date.parse(svc.createTime)), 'createTime RFC 3339');
    assert.equal(svc.creator, adminKey.client_email, 'creator is the caller\'s email');

    const listed = await call(() => run.projects.locations.services.list({parent: PARENT}));
    assert.deepEqual(listed.data.services.map(s => s.name), [SERVICE]);
  });

  it('sends a self-signed JWT with aud = the full request URL without query', async () => {
    const client = await auth.getClient();
    const seen = [];
    const transporter = client.transporter;
    const original = transporter.request;
    transporter.request = function (opts) {
      const h = opts.headers ?? {};
      const authz = typeof h.get === 'function' ? h.get('authorization')
                                               : (h.Authorization ?? h.authorization);
      seen.push({url: opts.url, params: opts.params, authorization: authz});
      return original.apply(this, arguments);
    };
    try {
      const res = await call(() => run.projects.locations.services.list(
          {parent: PARENT, pageSize: 5}));
      assert.equal(res.status, 200);
    } finally {
      transporter.request = original;
    }
    assert.equal(seen.length, 1, 'one request');
    const {url, params, authorization} = seen[0];
    assert.equal(params.pageSize, 5, 'the page size travels in the query');
    assert.match(authorization, /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    const {header, payload} = decodeJwt(authorization.slice('Bearer '.length));
    assert.equal(header.alg, 'RS256');
    assert.equal(header.kid, adminKey.private_key_id);
    assert.equal(payload.iss, adminKey.client_email);
    assert.equal(payload.sub, adminKey.client_email);
    assert.equal(payload.aud, `${moat.api}/v2/${PARENT}/services`, 'aud = request URL, no query');
    assert.equal(payload.aud, url.split('?')[0]);
    assert.equal(payload.scope, undefined, 'no scopes');
    assert.ok(payload.exp - payload.iat <= 3600);
  });

  it('getIamPolicy / setIamPolicy with etag / testIamPermissions on the service', async () => {
    const got = await call(() => run.projects.locations.services.getIamPolicy({
      resource: SERVICE, 'options.requestedPolicyVersion': 3,
    }));
    const policy = got.data;
    assert.ok(policy.etag, 'a policy always has an etag');
    const staleEtag = policy.etag;

    addBinding(policy, 'roles/run.invoker', `serviceAccount:${SA_EMAIL}`);
    const set = await call(() => run.projects.locations.services.setIamPolicy({
      resource: SERVICE,
      requestBody: {policy, updateMask: 'bindings,etag'},
    }));
    assert.ok(set.data.etag && set.data.etag !== staleEtag, 'a new etag');
    const invoker = set.data.bindings.find(b => b.role === 'roles/run.invoker');
    assert.deepEqual(invoker.members, [`serviceAccount:${SA_EMAIL}`]);
    revisionOf(set);  // a mutating response names its store revision

    const again = await call(() => run.projects.locations.services.getIamPolicy(
        {resource: SERVICE}, atRevision(revisionOf(set))));
    assert.equal(again.data.etag, set.data.etag);
    assert.deepEqual(again.data.bindings, set.data.bindings);

    const tested = await call(() => run.projects.locations.services.testIamPermissions({
      resource: SERVICE,
      requestBody: {permissions: ['run.routes.invoke', 'run.services.get', 'run.services.setIamPolicy']},
    }));
    assert.deepEqual([...tested.data.permissions].sort(),
                     ['run.routes.invoke', 'run.services.get', 'run.services.setIamPolicy']);

    // A read-modify-write on the old etag lost the race: 409 ABORTED.
    const stale = {...policy, etag: staleEtag, bindings: []};
    const err = await expectGoogleError(() => run.projects.locations.services.setIamPolicy({
      resource: SERVICE, requestBody: {policy: stale},
    }));
    assert.equal(err.httpStatus, 409, err.exchange);
    assert.equal(err.code, 409, err.exchange);
    assert.equal(err.status, 'ABORTED', err.exchange);
  });

  it('a missing service is 404 NOT_FOUND in Google\'s envelope', async () => {
    const err = await expectGoogleError(() => run.projects.locations.services.get(
        {name: `${PARENT}/services/nope`}));
    assert.equal(err.httpStatus, 404, err.exchange);
    assert.equal(err.status, 'NOT_FOUND', err.exchange);
  });

  it('IAM v1: creates a service account and a key file', async () => {
    const created = await call(() => iam.projects.serviceAccounts.create({
      name: `projects/${PROJECT}`,
      requestBody: {accountId: ACCOUNT_ID, serviceAccount: {displayName: 'Node runner'}},
    }));
    const sa = created.data;
    assert.equal(sa.email, SA_EMAIL);
    assert.equal(sa.name, `projects/${PROJECT}/serviceAccounts/${SA_EMAIL}`);
    assert.equal(sa.projectId, PROJECT);
    assert.equal(sa.displayName, 'Node runner');
    assert.match(sa.uniqueId, /^[0-9]+$/);

    const key = await call(() => iam.projects.serviceAccounts.keys.create({
      name: sa.name, requestBody: {},
    }));
    assert.match(key.data.name, new RegExp(`^${sa.name}/keys/[0-9a-f]+$`));
    const keyFile = JSON.parse(Buffer.from(key.data.privateKeyData, 'base64').toString('utf8'));
    assert.equal(keyFile.type, 'service_account');
    assert.equal(keyFile.client_email, SA_EMAIL);
    assert.equal(keyFile.client_id, sa.uniqueId);
    assert.equal(keyFile.project_id, PROJECT);
    assert.equal(keyFile.private_key_id, key.data.name.split('/').pop());
    assert.equal(keyFile.token_uri, moat.api + '/token');
    saKeyFile = writeTempFile('node-runner.json', JSON.stringify(keyFile));
    tempFiles.push(saKeyFile);

    const keys = await call(() => iam.projects.serviceAccounts.keys.list({
      name: sa.name, keyTypes: ['USER_MANAGED'],
    }, atRevision(revisionOf(key))));
    assert.ok(keys.data.keys.some(k => k.name === key.data.name), 'keys.list shows the new key');
  });

  it('the new key file authenticates as the new account: 403, then allowed after a grant',
     async () => {
       assert.ok(saKeyFile, 'the key file from the previous test');
       const saAuth = new google.auth.GoogleAuth({keyFile: saKeyFile});
       const saRun = google.run({version: 'v2', rootUrl: moat.api + '/', auth: saAuth});

       const denied = await expectGoogleError(() => saRun.projects.locations.services.get(
           {name: SERVICE}));
       assert.equal(denied.httpStatus, 403, denied.exchange);
       assert.equal(denied.code, 403, denied.exchange);
       assert.equal(denied.status, 'PERMISSION_DENIED', denied.exchange);

       // testIamPermissions needs no permission and answers the caller's own subset.
       const mine = await call(() => saRun.projects.locations.services.testIamPermissions({
         resource: SERVICE, requestBody: {permissions: ['run.routes.invoke', 'run.services.get']},
       }));
       assert.deepEqual(mine.data.permissions ?? [], ['run.routes.invoke']);

       // roles/run.viewer on the project, through Resource Manager v1.
       const current = await call(() => crm.projects.getIamPolicy({
         resource: PROJECT, requestBody: {options: {requestedPolicyVersion: 3}},
       }));
       const policy = addBinding(current.data, 'roles/run.viewer', `serviceAccount:${SA_EMAIL}`);
       const set = await call(() => crm.projects.setIamPolicy({
         resource: PROJECT, requestBody: {policy},
       }));
       assert.ok(set.data.bindings.some(b => b.role === 'roles/run.viewer' &&
                                             b.members.includes(`serviceAccount:${SA_EMAIL}`)));

       const got = await call(() => saRun.projects.locations.services.get(
           {name: SERVICE}, atRevision(revisionOf(set))));
       assert.equal(got.data.name, SERVICE);
       const listed = await call(() => saRun.projects.locations.services.list({parent: PARENT}));
       assert.deepEqual(listed.data.services.map(s => s.name), [SERVICE]);

       // Viewer cannot change the service's policy.
       const noSet = await expectGoogleError(() => saRun.projects.locations.services.setIamPolicy({
         resource: SERVICE, requestBody: {policy: {bindings: []}},
       }));
       assert.equal(noSet.status, 'PERMISSION_DENIED', noSet.exchange);
     });

  it('IAM Credentials generateIdToken: Owner alone gets 403; TokenCreator on the account works',
     async () => {
       const name = `projects/-/serviceAccounts/${SA_EMAIL}`;
       const audience = 'https://hello.example.test';
       const denied = await expectGoogleError(() =>
         iamcredentials.projects.serviceAccounts.generateIdToken({
           name, requestBody: {audience, includeEmail: true},
         }));
       assert.equal(denied.httpStatus, 403, denied.exchange);
       assert.equal(denied.status, 'PERMISSION_DENIED', denied.exchange);

       const resource = `projects/${PROJECT}/serviceAccounts/${SA_EMAIL}`;
       const current = await call(() => iam.projects.serviceAccounts.getIamPolicy({resource}));
       const policy = addBinding(current.data, 'roles/iam.serviceAccountTokenCreator',
                                 `serviceAccount:${adminKey.client_email}`);
       const set = await call(() => iam.projects.serviceAccounts.setIamPolicy({
         resource, requestBody: {policy},
       }));

       const minted = await call(() => iamcredentials.projects.serviceAccounts.generateIdToken({
         name, requestBody: {audience, includeEmail: true},
       }, atRevision(revisionOf(set))));
       const {header, payload} = decodeJwt(minted.data.token);
       assert.equal(header.alg, 'RS256');
       assert.equal(payload.aud, audience);
       assert.equal(payload.email, SA_EMAIL);
       assert.equal(payload.email_verified, true);
       assert.equal(payload.iss, moat.api);

       const sa = await call(() => iam.projects.serviceAccounts.get({name: resource}));
       assert.equal(payload.sub, sa.data.uniqueId);

       // Without includeEmail there is no email claim.
       const bare = await call(() => iamcredentials.projects.serviceAccounts.generateIdToken({
         name, requestBody: {audience},
       }));
       assert.equal(decodeJwt(bare.data.token).payload.email, undefined);
     });
});
