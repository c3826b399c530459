// A real OpenID Connect provider (the npm package oidc-provider) on loopback, standing in for a
// municipality's own identity provider in the staff single sign-on tests. Only the login page is
// ours (oidc-provider leaves interactions to the deployer): a form that checks a user name and
// password from OIDC_ACCOUNTS and grants the client's requested scopes.
//
// Environment:
//   OIDC_PORT            port on 127.0.0.1 (0 or unset: any free port)
//   OIDC_CLIENT_ID       the one registered client (a confidential web client, PKCE required)
//   OIDC_CLIENT_SECRET
//   OIDC_REDIRECT_URIS   comma-separated redirect URIs the client may use
//   OIDC_ACCOUNTS        comma-separated user:password pairs; the user name is the subject
//
// Prints one line `issuer http://127.0.0.1:PORT` when it is ready, then serves until killed.
import http from 'node:http';
import Provider from 'oidc-provider';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) {
    console.error(`provider.mjs: ${name} is required`);
    process.exit(2);
  }
  return value;
};

const accounts = new Map(
  env('OIDC_ACCOUNTS').split(',').filter(Boolean).map((pair) => {
    const at = pair.indexOf(':');
    return [pair.slice(0, at), pair.slice(at + 1)];
  }),
);

const server = http.createServer();
await new Promise((resolve) => server.listen(Number(env('OIDC_PORT', '0')), '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: env('OIDC_CLIENT_ID'),
    client_secret: env('OIDC_CLIENT_SECRET'),
    redirect_uris: env('OIDC_REDIRECT_URIS').split(',').filter(Boolean),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  findAccount: async (_ctx, sub) => accounts.has(sub)
    ? { accountId: sub, claims: async () => ({ sub, name: `User ${sub}` }) }
    : undefined,
  claims: { openid: ['sub'], profile: ['name'] },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: { devInteractions: { enabled: false } },
  cookies: { keys: ['miz-test-provider'] },
});
// Quiet the development-key warnings: this provider lives for one test run.
provider.on('server_error', (_ctx, err) => console.error('provider error:', err));

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(res, uid, message) {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width"><title>Municipal identity provider</title></head>
<body style="font-family:sans-serif;max-width:24rem;margin:2rem auto">
<h1>Municipal identity provider</h1>${message ? `<p role="alert">${escape(message)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}">
<p><label>User name <input name="login" autocomplete="username" autofocus></label></p>
<p><label>Password <input name="password" type="password" autocomplete="current-password"></label></p>
<p><button type="submit">Sign in</button></p></form></body></html>`);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (req.method !== 'POST') return loginPage(res, uid);
  const form = await readForm(req);
  const login = form.get('login') ?? '';
  if (!accounts.has(login) || accounts.get(login) !== form.get('password')) {
    return loginPage(res, uid, 'Unknown user name or wrong password.');
  }
  const grant = new provider.Grant({ accountId: login, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, {
    login: { accountId: login },
    consent: { grantId },
  }, { mergeWithLastSubmission: false });
}

const handle = provider.callback();
server.on('request', (req, res) => {
  const match = /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(req.url.split('?')[0]);
  if (!match) return handle(req, res);
  interaction(req, res, match[1]).catch((err) => {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(`interaction failed: ${err.message}`);
  });
});

console.log(`issuer ${issuer}`);
