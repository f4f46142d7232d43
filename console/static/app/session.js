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
