// Pages outside the console shell (sign-in, setup, the 403 page): theme and translations of their markup.
import { chosenLanguage, loadLanguage, translateMarkup } from "./i18n.js";
import { applyTheme } from "./theme.js";

applyTheme();
loadLanguage(chosenLanguage()).then(() => translateMarkup());
