// The signed-in user (from /api/auth/me) and what they may do; the server checks every call again.

let signedIn = null;

export function setSession(me) {
  signedIn = me;
}

// Globally or, with teamId, within that team.
export function can(permission, teamId) {
  const global = signedIn.permissions;
  if (global.includes("*") || global.includes(permission)) return true;
  const scoped = teamId ? signedIn.team_permissions[teamId] || [] : [];
  return scoped.includes("*") || scoped.includes(permission);
}

export function canSomewhere(permission) {
  return can(permission)
    || Object.values(signedIn.team_permissions).some((p) => p.includes(permission) || p.includes("*"));
}

// Show another console page without reloading (the shell listens for popstate).
export function navigate(path) {
  window.history.pushState({}, "", path);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

// Where ``permission`` holds for reading team-filtered data: null when it holds everywhere, else the first team
// it holds in (the API then answers for that team only), or undefined when nowhere.
export function teamScope(permission) {
  if (can(permission)) return null;
  const entry = Object.entries(signedIn.team_permissions).find(([, p]) => p.includes(permission) || p.includes("*"));
  return entry ? entry[0] : undefined;
}
