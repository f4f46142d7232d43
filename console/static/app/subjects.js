// Who rules and assignments name, by id: roles, teams, users and API keys as people know them (a name, an email,
// a key's name and prefix), each kind fetched only where the caller may list it (else the id is shown as it is).
import { api } from "./api.js";
import { can } from "./session.js";

const SOURCES = {
  role: ["roles:read", "/api/roles", (r) => r.name],
  team: ["teams:read", "/api/teams", (x) => x.name],
  user: ["users:read", "/api/users?limit=500", (u) => u.email],
  api_key: [null, "/api/keys", (k) => `${k.name} (${k.prefix})`], // every user lists the keys they may see
};

// kinds: some of role, team, user, api_key. The answer: {kind: {id: label}}.
export async function subjectNames(kinds) {
  const named = await Promise.all(kinds.map(async (kind) => {
    const [permission, path, label] = SOURCES[kind];
    if (permission && !can(permission)) return [kind, {}];
    const items = await api("GET", path).then((r) => r.items, () => []);
    return [kind, Object.fromEntries(items.map((item) => [item.id, label(item)]))];
  }));
  return Object.fromEntries(named);
}
