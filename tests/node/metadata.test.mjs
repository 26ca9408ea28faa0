// Google's Node libraries inside a Moat command service, against that service's metadata
// server: gcp-metadata (detection, email, project id) and google-auth-library (GoogleAuth on
// "GCE", IdTokenClient) calling ANOTHER private Moat service through the gateway. The workload
// is fixtures/workload.mjs; its caller's grant decides 200 vs 403.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, it} from 'node:test';

import {google} from 'googleapis';

import {
  HERE, addBinding, atRevision, call, gatewayRequest, removeBinding, revisionOf, startMoat,
} from './harness.mjs';

const PROJECT = 'md-compat';
const LOCATION = 'us-central1';
const PARENT = `projects/${PROJECT}/locations/${LOCATION}`;
const ACCOUNT_ID = 'md-runner';
const SA_EMAIL = `${ACCOUNT_ID}@${PROJECT}.iam.gserviceaccount.com`;
const SA_MEMBER = `serviceAccount:${SA_EMAIL}`;

describe('gcp-metadata and google-auth-library inside a Moat service', () => {
  let moat;
  let run;
  let backend;  // the in-test upstream: {server, requests[]}
  let backendUri;
  let frontendUri;
  let emptyHome;
  let lastRevision = '0';

  async function setInvoker(serviceName, member, present) {
    const resource = `${PARENT}/services/${serviceName}`;
    const current = await call(() => run.projects.locations.services.getIamPolicy({resource}));
    const policy = present ? addBinding(current.data, 'roles/run.invoker', member)
                           : removeBinding(current.data, 'roles/run.invoker', member);
    const set = await call(() => run.projects.locations.services.setIamPolicy({
      resource, requestBody: {policy},
    }));
    lastRevision = revisionOf(set);
    return set.data;
  }

  async function check() {
    const res = await gatewayRequest(frontendUri, {
      path: `/check?rev=${lastRevision}`,
      headers: {'X-Moat-Min-Revision': lastRevision},
    });
    assert.equal(res.status, 200, `GET ${frontendUri}/check → ${res.status} ${res.body}`);
    return JSON.parse(res.body);
  }

  before(async () => {
    moat = await startMoat();
    const auth = new google.auth.GoogleAuth({keyFile: moat.keyFile});
    const rootUrl = moat.api + '/';
    run = google.run({version: 'v2', rootUrl, auth});
    const iam = google.iam({version: 'v1', rootUrl, auth});

    backend = {requests: []};
    backend.server = http.createServer((req, res) => {
      backend.requests.push({method: req.method, url: req.url, headers: req.headers});
      res.writeHead(200, {'content-type': 'text/plain'});
      res.end(`backend saw ${req.url}`);
    });
    await new Promise(resolve => backend.server.listen(0, '127.0.0.1', resolve));

    await call(() => iam.projects.serviceAccounts.create({
      name: `projects/${PROJECT}`, requestBody: {accountId: ACCOUNT_ID},
    }));

    const b = await call(() => run.projects.locations.services.create({
      parent: PARENT,
      serviceId: 'backend',
      requestBody: {template: {upstream: `http://127.0.0.1:${backend.server.address().port}`}},
    }));
    backendUri = b.data.response.uri;
    assert.ok(backendUri, `backend uri in ${JSON.stringify(b.data)}`);
    await setInvoker('backend', SA_MEMBER, true);

    // An empty HOME, so google-auth-library cannot find a developer's gcloud ADC file and
    // has to use the metadata server, as on Cloud Run.
    emptyHome = fs.mkdtempSync(path.join(os.tmpdir(), 'moat-node-workload-home-'));
    const f = await call(() => run.projects.locations.services.create({
      parent: PARENT,
      serviceId: 'frontend',
      requestBody: {
        template: {
          serviceAccount: SA_EMAIL,
          containers: [{
            image: 'node-workload',
            command: [process.execPath, path.join(HERE, 'fixtures', 'workload.mjs')],
            env: [{name: 'TARGET_URL', value: backendUri}, {name: 'HOME', value: emptyHome}],
          }],
        },
      },
    }));
    frontendUri = f.data.response.uri;
    assert.ok(frontendUri, `frontend uri in ${JSON.stringify(f.data)}`);
    await setInvoker('frontend', 'allUsers', true);
  });

  after(async () => {
    await moat?.stop();  // stops the workload with it
    if (backend?.server) await new Promise(resolve => backend.server.close(resolve));
    if (emptyHome) fs.rmSync(emptyHome, {recursive: true, force: true});
  });

  it('the backend is private: an anonymous call through the gateway is 403', async () => {
    const seen = backend.requests.length;
    const res = await gatewayRequest(backendUri, {path: '/anon',
                                                  headers: {'X-Moat-Min-Revision': lastRevision}});
    assert.equal(res.status, 403, res.body);
    assert.equal(backend.requests.length, seen, 'the upstream never saw it');
  });

  it('gcp-metadata detects the metadata server and reads email and project id', async () => {
    const r = await check();
    assert.match(r.env.GCE_METADATA_HOST, /^127\.0\.0\.1:[0-9]+$/);
    assert.equal(r.env.GCE_METADATA_IP, r.env.GCE_METADATA_HOST);
    assert.equal(r.env.K_SERVICE, 'frontend');
    assert.equal(r.available, true, JSON.stringify(r));
    assert.equal(r.email, SA_EMAIL, JSON.stringify(r));
    assert.equal(r.projectId, PROJECT, JSON.stringify(r));
    assert.equal(r.authProjectId, PROJECT, JSON.stringify(r));
    assert.equal(r.noFlavorStatus, 403, 'no Metadata-Flavor header → 403');
  });

  it('IdTokenClient gets an ID token for the backend URL and the call succeeds', async () => {
    const seen = backend.requests.length;
    const r = await check();
    const claims = r.idTokenClaims;
    assert.ok(claims && !claims.error, JSON.stringify(r));
    assert.equal(claims.aud, backendUri);
    assert.equal(claims.iss, moat.api);
    assert.equal(claims.email, SA_EMAIL);
    assert.equal(claims.email_verified, true);
    assert.match(claims.sub, /^[0-9]+$/);
    assert.ok(claims.exp - claims.iat <= 3600);
    assert.equal(claims.google?.compute_engine?.project_id, PROJECT, 'format=full claims');

    assert.deepEqual(r.call, {status: 200, body: 'backend saw /from-workload'}, JSON.stringify(r));
    assert.equal(backend.requests.length, seen + 1);
    assert.equal(backend.requests.at(-1).url, '/from-workload');
  });

  it('the metadata server\'s access token authenticates to Moat\'s API', async () => {
    const r = await check();
    assert.equal(typeof r.accessToken, 'string', JSON.stringify(r.accessToken));
    const res = await fetch(`${moat.api}/v2/${PARENT}/services/backend:testIamPermissions`, {
      method: 'POST',
      headers: {authorization: `Bearer ${r.accessToken}`, 'content-type': 'application/json'},
      body: JSON.stringify({permissions: ['run.routes.invoke', 'run.services.get']}),
    });
    const body = await res.text();
    assert.equal(res.status, 200, body);
    assert.deepEqual(JSON.parse(body).permissions, ['run.routes.invoke']);
  });

  it('without roles/run.invoker the same call is 403; granting it back restores it', async () => {
    await setInvoker('backend', SA_MEMBER, false);
    const seen = backend.requests.length;
    const denied = await check();
    assert.equal(denied.call?.status, 403, JSON.stringify(denied));
    assert.equal(backend.requests.length, seen, 'the upstream never saw it');

    await setInvoker('backend', SA_MEMBER, true);
    const allowed = await check();
    assert.equal(allowed.call?.status, 200, JSON.stringify(allowed));
  });

  it('service URLs: 127.0.0.1 + the Host header routes; a bare 127.0.0.1 does not', async t => {
    const u = new URL(frontendUri);
    // Whether Node resolves *.localhost depends on the system resolver (glibc needs
    // nss-myhostname or systemd-resolved; see harness.mjs): record what this machine does.
    const plain = await fetch(`${frontendUri}/nope`).then(r => `HTTP ${r.status}`,
                                                          e => e.cause?.code ?? String(e));
    t.diagnostic(`Node's own resolution of ${u.hostname}: ${plain}`);
    // 127.0.0.1 without the service's Host reaches no service: the gateway's 404.
    const direct = await fetch(`http://127.0.0.1:${u.port}/check`);
    const directBody = await direct.text();
    assert.equal(direct.status, 404, directBody);
    assert.notEqual(directBody, 'not found\n', 'not the workload\'s answer');
    const routed = await gatewayRequest(frontendUri, {path: '/nope'});
    assert.equal(routed.status, 404);
    assert.equal(routed.body, 'not found\n', 'the workload answered');
  });
});
