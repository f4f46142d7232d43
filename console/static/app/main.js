// The console shell: header, navigation by role, and the page for the URL (drawn without reloading).
import { api } from "./api.js";
import { clear, h } from "./dom.js";
import { chosenLanguage, loadLanguage, setLanguage, t, translateMarkup } from "./i18n.js";
import { navigate, setSession } from "./session.js";
import { applyTheme, nextTheme } from "./theme.js";

// The module drawing a page is named after its path (pages/<name>.js; "/" is the overview); which pages there
// are, and who may open them, is the server's table (console/navigation.py).
function moduleOf(page) {
  return page.path === "/" ? "overview" : page.path.slice(1);
}
const GROUPS = ["overview", "gateway", "access", "system"];

const state = { me: null, pages: [], drawn: 0 };

function pageFor(path) {
  let best = null;
  for (const page of state.pages) {
    const matches = path === page.path || (page.path !== "/" && path.startsWith(`${page.path}/`));
    if (matches && (!best || page.path.length > best.path.length)) best = page;
  }
  return best;
}

function drawHeader() {
  document.getElementById("whoami").textContent = state.me.user.email;
  const language = document.getElementById("language");
  language.value = chosenLanguage();
  language.addEventListener("change", () => { setLanguage(language.value); window.location.reload(); });
  const theme = document.getElementById("theme");
  const showTheme = (name) => { theme.textContent = `${t("shell.theme")}: ${t(`theme.${name}`)}`; };
  showTheme(applyTheme());
  theme.addEventListener("click", () => showTheme(nextTheme()));
  document.getElementById("logout").addEventListener("click", async () => {
    await api("POST", "/api/auth/logout");
    window.location.assign("/login");
  });
}

function drawNavigation() {
  const nav = document.getElementById("nav");
  clear(nav, GROUPS.map((group) => {
    const pages = state.pages.filter((page) => page.group === group);
    if (!pages.length) return null;
    return h("div", { class: "nav-group" }, h("h2", {}, t(`nav.group.${group}`)),
      h("ul", {}, pages.map((page) => h("li", {},
        h("a", { href: page.path, "data-link": true, dataset: { path: page.path } }, t(page.label))))));
  }));
}

async function draw() {
  const path = window.location.pathname;
  const page = pageFor(path);
  for (const link of document.querySelectorAll("#nav a")) {
    if (page && link.dataset.path === page.path) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const main = document.getElementById("content");
  const drawing = ++state.drawn;
  if (!page) {
    clear(main, h("h1", {}, t("forbidden.title")), h("p", {}, t("forbidden.text")));
    return;
  }
  document.title = `${t(page.label)} · Warden`;
  const module = await import(`./pages/${moduleOf(page)}.js`);
  if (drawing !== state.drawn) return; // another navigation started meanwhile
  clear(main, h("p", { class: "muted" }, t("common.loading")));
  try {
    const content = await module.render({ path, me: state.me, redraw: draw });
    if (drawing === state.drawn) clear(main, content);
  } catch (error) {
    const fields = (error.fields || []).map((f) => `${f.field}: ${f.message}`).join("; ");
    if (drawing === state.drawn) {
      clear(main, h("h1", {}, t(page.label)), h("p", { class: "error", role: "alert" }, fields ? `${error.message} (${fields})` : error.message));
    }
  }
  if (state.drawn > 1) main.focus();
}

async function start() {
  applyTheme();
  await loadLanguage(chosenLanguage());
  translateMarkup();
  const [me, pages] = await Promise.all([api("GET", "/api/auth/me"), api("GET", "/api/console/pages")]);
  state.me = me;
  setSession(me);
  state.pages = pages.items;
  drawHeader();
  drawNavigation();
  window.addEventListener("popstate", draw);
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-link]");
    if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    navigate(link.getAttribute("href"));
  });
  await draw();
}

start().catch((error) => { document.getElementById("content").textContent = error.message; });
