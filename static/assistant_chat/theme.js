// Light or dark: the reader's choice (the toggle, kept in localStorage) or else the system setting, followed live.
// Loaded in <head> without defer so that html[data-theme] is set before the first paint (no flash of light).
(function () {
  "use strict";
  const KEY = "theme";
  const media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  function stored() {
    try {
      const value = window.localStorage.getItem(KEY);
      return value === "dark" || value === "light" ? value : null;
    } catch (err) {
      return null; // storage disabled: follow the system
    }
  }

  function current() {
    return stored() || (media && media.matches ? "dark" : "light");
  }

  function apply() {
    const theme = current();
    document.documentElement.dataset.theme = theme;
    const button = document.getElementById("theme-toggle");
    if (button) button.setAttribute("aria-pressed", theme === "dark" ? "true" : "false");
  }

  apply();
  if (media && media.addEventListener) media.addEventListener("change", apply);
  document.addEventListener("DOMContentLoaded", function () {
    const button = document.getElementById("theme-toggle");
    if (!button) return;
    button.hidden = false;
    apply();
    button.addEventListener("click", function () {
      const next = current() === "dark" ? "light" : "dark";
      try {
        window.localStorage.setItem(KEY, next);
      } catch (err) {
        /* not kept, still applied */
      }
      document.documentElement.dataset.theme = next;
      button.setAttribute("aria-pressed", next === "dark" ? "true" : "false");
    });
  });
})();
