// The tests' OAuth authorization server: oidc-provider with DCR, PKCE S256 required, RFC 8707 resource
// indicators issuing short-lived JWT access tokens (aud = the resource) and refresh tokens, and an interaction
// handler that logs in the account named by the x-test-user header (default test-user) and grants consent.
// Accounts have the email <account>@example.com and the groups of the x-test-groups header (space-separated)
// sent when they last logged in; both are in the ID token (for console single sign-on).
// Test-only endpoints: /test/stats (refresh grants per account), /test/revoke?account=A (revokes A's grants
// and makes /test/active?sub=A false until A logs in again), /test/active?sub=A (the upstream's stand-in for
// introspection).
import Provider from 'oidc-provider';

const PORT = +(process.env.PORT || 4000);
const ISSUER = `http://127.0.0.1:${PORT}`;
const RESOURCE = process.env.RESOURCE;
const ACCESS_TTL = +(process.env.ACCESS_TTL || 3600);
// Tokens from the refresh grant may live longer, so that a test of "one refresh under concurrency" does not
// depend on how fast a two-core machine gets through its concurrent calls.
const REFRESHED_TTL = +(process.env.REFRESHED_TTL || ACCESS_TTL);

const refreshes = {};
const refreshTokens = {};
const revoked = new Set();
const groups = {};

const provider = new Provider(ISSUER, {
  clients: [],
  scopes: ['openid', 'offline_access', 'mcp', 'email', 'groups'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
  conformIdTokenClaims: false,
  features: {
    registration: { enabled: true },
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => {
        if (indicator !== RESOURCE) throw new Error(`unknown resource ${indicator}`);
        const refreshed = ctx.oidc.params && ctx.oidc.params.grant_type === 'refresh_token';
        return { scope: 'mcp', audience: indicator, accessTokenFormat: 'jwt',
                 accessTokenTTL: refreshed ? REFRESHED_TTL : ACCESS_TTL };
      },
    },
  },
  pkce: { required: () => true },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, email: `${id}@example.com`, email_verified: true, groups: groups[id] || [] }),
  }),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
});

provider.on('grant.success', (ctx) => {
  if (ctx.oidc.params.grant_type === 'refresh_token') {
    const account = ctx.oidc.refreshToken ? ctx.oidc.refreshToken.accountId : 'unknown';
    refreshes[account] = (refreshes[account] || 0) + 1;
  }
});
provider.on('refresh_token.saved', (token) => {
  (refreshTokens[token.accountId] ||= []).push(token);
});

provider.use(async (ctx, next) => {
  if (ctx.path === '/test/stats') {
    ctx.body = { refreshes };
    return;
  }
  if (ctx.path === '/test/active') {
    ctx.body = { active: !revoked.has(ctx.query.sub) };
    return;
  }
  if (ctx.path === '/test/revoke' && ctx.method === 'POST') {
    const account = ctx.query.account;
    revoked.add(account);
    for (const token of refreshTokens[account] || []) {
      const grant = await provider.Grant.find(token.grantId);
      if (grant) await grant.destroy();
      await token.destroy();
    }
    refreshTokens[account] = [];
    ctx.body = { revoked: account };
    return;
  }
  if (!ctx.path.startsWith('/interaction/')) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  let result;
  if (details.prompt.name === 'login') {
    const account = ctx.get('x-test-user') || 'test-user';
    revoked.delete(account);
    groups[account] = (ctx.get('x-test-groups') || '').split(' ').filter(Boolean);
    result = { login: { accountId: account } };
  } else {
    const grant = details.grantId ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    const missing = details.prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  }
  ctx.respond = false;
  await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
});

provider.listen(PORT, '127.0.0.1', () => console.log(`authorization server on ${ISSUER}`));
