// Server-sent event streams the console follows. An EventSource cannot send the session's CSRF header, and a
// long-lived credential never goes in a URL: each stream opens with a one-shot ticket, and a new ticket is asked
// for whenever it has to reconnect (the spent one would be refused). A stream closes once its owner node has left
// the page (redrawn, navigated away).
import { api } from "./api.js";

const RECONNECT_MS = 3000;

// ticketPath: where to ask for a ticket (its answer's url opens the stream); handlers: {event: (message) => ...}
export async function followStream(ticketPath, owner, handlers) {
  let source = null;
  const left = () => !owner.isConnected;
  const watch = setInterval(() => {
    if (left()) {
      clearInterval(watch);
      if (source) source.close();
    }
  }, 1000);
  const open = async () => {
    const { url } = await api("POST", ticketPath);
    source = new EventSource(url);
    for (const [event, handle] of Object.entries(handlers)) source.addEventListener(event, handle);
    source.addEventListener("error", () => {
      source.close();
      if (!left()) setTimeout(() => open().catch(() => {}), RECONNECT_MS);
    });
  };
  try {
    await open();
  } catch (error) {
    clearInterval(watch);
    throw error;
  }
}
