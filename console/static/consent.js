// The consent page of Warden's authorization server: the signed-in user allows or declines a client.
import { api, describe } from "./app/api.js";

document.addEventListener("DOMContentLoaded", () => {
  const consent = document.getElementById("consent");
  for (const choice of consent.querySelectorAll("button[data-allow]")) {
    choice.addEventListener("click", async () => {
      try {
        const answer = await api("POST", "/api/oauth/decision", {
          request: consent.dataset.request, allow: choice.dataset.allow === "true",
        });
        window.location.assign(answer.redirect);
      } catch (error) {
        const box = document.querySelector("main .error");
        box.textContent = describe(error);
        box.hidden = false;
      }
    });
  }
});
