// Test harness for Google's Node client libraries against a real `moat serve`.
//
// startMoat() runs the binary named by $MOAT_BIN on free loopback ports (port 0) with a fresh
// temporary home, waits for its one-line JSON ready message on stdout (no fixed sleeps), and
// returns { api, gateway, home, keyFile, stop() }. stop() sends SIGTERM, waits for the exit
// (SIGKILL after a grace period) and removes the home.
//
// Service URLs are http://NAME-HASH.REGION.run.localhost:PORT. Node does NOT resolve
// `*.localhost` by itself: dns.lookup goes to getaddrinfo, and with `hosts: files dns` in
// nsswitch.conf (no nss-myhostname) that answers ENOTFOUND. So the tests reach the gateway on
// 127.0.0.1:PORT with the service's Host header (gatewayRequest), and a workload that must use
// the URL as is (Google's libraries build the request themselves) installs
// installLocalhostResolution(), which answers loopback for `*.localhost` as RFC 6761 §6.3 asks.

import {spawn} from 'node:child_process';
import dns from 'node:dns';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));

const READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 10_000;

export function moatBinary() {
  const fromEnv = process.env.MOAT_BIN;
  const candidates = fromEnv
    ? [fromEnv]
    : [path.join(HERE, '../../build/moat'), path.join(HERE, '../../build-node/moat')];
  for (const c of candidates) {
    if (fs.existsSync(c)) return path.resolve(c);
  }
  throw new Error(
    `moat binary not found (tried ${candidates.join(', ')}); set MOAT_BIN=/path/to/moat`);
}

// Starts `moat serve` and resolves once it printed its ready line.
export async function startMoat({extraArgs = []} = {}) {
  const bin = moatBinary();
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'moat-node-'));
  const env = {...process.env};
  delete env.MOAT_MASTER_KEY;  // a fresh home gets its own master key
  const child = spawn(
    bin,
    ['serve', '--home', home, '--gateway-addr', '127.0.0.1:0', '--api-addr', '127.0.0.1:0',
     ...extraArgs],
    {stdio: ['ignore', 'pipe', 'pipe'], env});
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', d => {
    stderr += d;
    if (stderr.length > 1_000_000) stderr = stderr.slice(-500_000);
  });
  const exited = new Promise(resolve => child.once('exit', (code, signal) => resolve({code, signal})));

  const ready = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      reject(new Error(`moat serve printed no ready line within ${READY_TIMEOUT_MS} ms\n${stderr}`));
    }, READY_TIMEOUT_MS);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', d => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buf.slice(0, nl)));
      } catch (e) {
        reject(new Error(`moat serve printed a bad ready line ${JSON.stringify(buf)}: ${e}`));
      }
    });
    exited.then(({code, signal}) => {
      clearTimeout(timer);
      reject(new Error(`moat serve exited (code ${code}, signal ${signal}) before it was ready\n` +
                       stderr));
    });
  }).catch(async e => {
    child.kill('SIGKILL');
    await exited;
    fs.rmSync(home, {recursive: true, force: true});
    throw e;
  });

  let stopped = false;
  exited.then(({code, signal}) => {
    if (stopped) return;
    // Later calls fail with ECONNREFUSED; say why once, with the server's last words.
    process.stderr.write(`\n*** moat serve (pid ${child.pid}) died unexpectedly: code ${code}, ` +
                         `signal ${signal}; last stderr:\n${stderr.slice(-4000)}\n`);
  });
  return {
    api: ready.api,
    gateway: ready.gateway,
    home: ready.home,
    keyFile: path.join(ready.home, 'admin-key.json'),
    pid: child.pid,
    stderr: () => stderr,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
        await exited;
        clearTimeout(killer);
      }
      fs.rmSync(home, {recursive: true, force: true});
    },
  };
}

// Writes `content` to a fresh 0600 file in a temp dir; returns its path.
export function writeTempFile(name, content) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moat-node-file-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, content, {mode: 0o600});
  return file;
}

export function removeTempFile(file) {
  fs.rmSync(path.dirname(file), {recursive: true, force: true});
}

// A plain HTTP request to a service URL through the gateway: connects to 127.0.0.1 on the
// URL's port and sends the URL's host as Host. Resolves {status, headers, body}.
export function gatewayRequest(serviceUrl, {method = 'GET', path: p = '/', headers = {}, body} = {}) {
  const u = new URL(serviceUrl);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port: u.port || 80,
      method,
      path: p,
      headers: {host: u.host, ...headers},
    }, res => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', d => { data += d; });
      res.on('end', () => resolve({status: res.statusCode, headers: res.headers, body: data}));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(60_000, () => req.destroy(new Error(`request to ${serviceUrl}${p} timed out`)));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

// Makes dns.lookup answer 127.0.0.1 for `localhost` and `*.localhost` (RFC 6761 §6.3);
// everything else goes to the system resolver. Covers http.request, node-fetch and undici's
// fetch, which all resolve through dns.lookup.
export function installLocalhostResolution() {
  const original = dns.lookup;
  if (original.moatLocalhost) return;
  const patched = function lookup(host, options, callback) {
    if (typeof options === 'function') {
      callback = options;
      options = {};
    }
    if (typeof host === 'string' && /(^|\.)localhost\.?$/i.test(host)) {
      const all = typeof options === 'object' && options !== null && options.all;
      if (all) return process.nextTick(callback, null, [{address: '127.0.0.1', family: 4}]);
      return process.nextTick(callback, null, '127.0.0.1', 4);
    }
    return original.call(this, host, options, callback);
  };
  patched.moatLocalhost = true;
  dns.lookup = patched;
}

// The store revision a mutating API response created (X-Moat-Revision), as a string.
export function revisionOf(res) {
  const h = res.headers ?? {};
  const v = typeof h.get === 'function' ? h.get('x-moat-revision') : h['x-moat-revision'];
  if (!v) throw new Error(`response has no X-Moat-Revision header: ${JSON.stringify(h)}`);
  return String(v);
}

// googleapis call options that make the API serve the call only once it sees revision `rev`.
export function atRevision(rev) {
  return {headers: {'X-Moat-Min-Revision': String(rev)}};
}

// A readable dump of a failed googleapis (gaxios) call: the request and the response.
export function describeError(e) {
  const cfg = e?.config ?? {};
  const res = e?.response;
  let reqBody = cfg.data ?? cfg.body;
  if (reqBody !== undefined && typeof reqBody !== 'string') reqBody = JSON.stringify(reqBody);
  return [
    `${cfg.method ?? '?'} ${cfg.url ?? '?'}${cfg.params ? ' params=' + JSON.stringify(cfg.params) : ''}`,
    reqBody !== undefined ? `request body: ${reqBody}` : '',
    res ? `→ ${res.status} ${JSON.stringify(res.data)}` : `→ no response: ${e?.message ?? e}`,
  ].filter(Boolean).join('\n');
}

// Runs `fn` (a googleapis call) expecting a Google error envelope; returns {code, status,
// message} of `error`. Fails with the full exchange when the call succeeds or the body is not
// Google's envelope.
export async function expectGoogleError(fn) {
  let res;
  try {
    res = await fn();
  } catch (e) {
    const data = e?.response?.data;
    const err = data?.error;
    if (!err || typeof err !== 'object') {
      throw new Error(`expected Google's error envelope, got:\n${describeError(e)}`);
    }
    return {code: err.code, status: err.status, message: err.message, httpStatus: e.response.status,
            exchange: describeError(e)};
  }
  throw new Error(`expected an error, got ${res?.status} ${JSON.stringify(res?.data)}`);
}

// Wraps a googleapis call so an unexpected failure shows the request and response.
export async function call(fn) {
  try {
    return await fn();
  } catch (e) {
    if (e?.config) throw new Error(`unexpected API failure:\n${describeError(e)}`);
    throw e;
  }
}

// Decodes a compact JWS without verifying it: {header, payload}.
export function decodeJwt(token) {
  const parts = String(token).split('.');
  if (parts.length !== 3) throw new Error(`not a compact JWS: ${token}`);
  const dec = s => JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  return {header: dec(parts[0]), payload: dec(parts[1])};
}

// Adds (member, role) to an IAM policy object in place (creating the binding if needed).
export function addBinding(policy, role, member) {
  policy.bindings = policy.bindings ?? [];
  let b = policy.bindings.find(x => x.role === role && !x.condition);
  if (!b) {
    b = {role, members: []};
    policy.bindings.push(b);
  }
  if (!b.members.includes(member)) b.members.push(member);
  return policy;
}

// Removes (member, role) from a policy object in place; drops an emptied binding.
export function removeBinding(policy, role, member) {
  policy.bindings = (policy.bindings ?? [])
    .map(b => (b.role === role && !b.condition
      ? {...b, members: b.members.filter(m => m !== member)} : b))
    .filter(b => b.members.length > 0);
  return policy;
}
