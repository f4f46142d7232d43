// Light, dark, or the system's choice; kept in this browser.

const STORED = "warden.theme";
const ORDER = ["system", "light", "dark"];

export function applyTheme() {
  const theme = localStorage.getItem(STORED) || "system";
  if (theme === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  return theme;
}

export function nextTheme() {
  const current = localStorage.getItem(STORED) || "system";
  const next = ORDER[(ORDER.indexOf(current) + 1) % ORDER.length];
  localStorage.setItem(STORED, next);
  return applyTheme();
}
