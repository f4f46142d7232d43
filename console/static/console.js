// Sign-in and setup pages: JSON form posts with the CSRF header, and single sign-on when configured.
import { api, describe } from "./app/api.js";

// Where sign-in returns to (?next=, e.g. the OAuth consent page): a path on this console only.
function nextPage() {
  const next = new URLSearchParams(window.location.search).get("next");
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : null;
}

function wireForm(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const errorBox = form.querySelector(".error");
    errorBox.hidden = true;
    const body = {};
    for (const [name, value] of new FormData(form).entries()) body[name] = value;
    try {
      await api("POST", form.dataset.endpoint, body);
      window.location.assign(nextPage() || form.dataset.next);
    } catch (error) {
      errorBox.textContent = describe(error);
      errorBox.hidden = false;
    }
  });
}

// The sign-in page offers single sign-on when an identity provider is configured.
async function offerSingleSignOn() {
  const methods = await api("GET", "/api/auth/methods");
  if (!methods.oidc) return;
  const link = document.getElementById("sso-link");
  link.textContent = methods.oidc.label;
  link.href = methods.oidc.login_url;
  document.getElementById("sso").hidden = false;
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("form[data-endpoint]").forEach(wireForm);
  if (document.getElementById("sso")) offerSingleSignOn().catch(() => {});
});
