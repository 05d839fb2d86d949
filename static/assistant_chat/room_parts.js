// Parts of the room page that hold no protocol state, shared through window.RoomParts: times and day separators,
// copying to the clipboard, each answer's sources and the citation popover, and counting a message's characters.
// Loaded (deferred) before room.js, which is the protocol and the page's controls.
(function () {
  "use strict";

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // --- times and day separators ----------------------------------------------------------------------------------

  // Formatters made once: toLocale*String builds a new one on every call, which costs tens of ms over a page.
  const hourFormat = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });
  const fullFormat = new Intl.DateTimeFormat([], { dateStyle: "full", timeStyle: "short" });
  const dayFormat = new Intl.DateTimeFormat([], { weekday: "long", year: "numeric", month: "long", day: "numeric" });
  const dateFormat = new Intl.DateTimeFormat([], { dateStyle: "full" });

  function formatTime(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return isNaN(date) ? "" : hourFormat.format(date);
  }

  // The hour in the message, the full date on hover (title) and for assistive technology (datetime).
  function setTime(node, iso) {
    if (!node) return;
    node.dateTime = iso || "";
    node.textContent = formatTime(iso);
    const date = new Date(iso);
    if (iso && !isNaN(date)) node.title = fullFormat.format(date);
  }

  function dayKey(iso) {
    const date = new Date(iso);
    return iso && !isNaN(date) ? date.toDateString() : "";
  }

  function dayLabel(iso) {
    const date = new Date(iso);
    const today = new Date();
    const yesterday = new Date(Date.now() - 86400000);
    if (date.toDateString() === today.toDateString()) return "Today";
    if (date.toDateString() === yesterday.toDateString()) return "Yesterday";
    return dayFormat.format(date);
  }

  // One separator above the first message of each day (in the reader's time zone). Separators already in the
  // right place stay untouched, so a new message costs no change above it.
  function refreshDays(list) {
    if (!list) return;
    let previous = "";
    let pending = null; // a separator seen, kept if the next message starts its day
    Array.from(list.children).forEach(function (node) {
      if (node.classList.contains("day-separator")) {
        if (pending) pending.remove();
        pending = node;
        return;
      }
      if (!node.classList.contains("message")) return;
      const time = node.querySelector("time");
      const iso = time ? time.getAttribute("datetime") : "";
      const key = dayKey(iso);
      if (key && key !== previous) {
        if (!pending || pending.dataset.day !== key) {
          if (pending) pending.remove();
          const separator = el("li", "day-separator");
          separator.dataset.day = key;
          const label = el("time", "", dayLabel(iso));
          label.dateTime = iso.slice(0, 10);
          label.title = dateFormat.format(new Date(iso));
          separator.appendChild(label);
          list.insertBefore(separator, node);
        }
        previous = key;
      } else if (pending) {
        pending.remove();
      }
      pending = null;
    });
    if (pending) pending.remove();
  }

  // --- copying ---------------------------------------------------------------------------------------------------

  // Copy `text`; `source` (the button pressed) says "Copied" for a moment; `say` reports to the reader
  // (say(text, isError)).
  function copyText(text, source, say) {
    const done = function () {
      say("Copied to the clipboard.", false);
      if (source) {
        const label = source.textContent;
        source.textContent = "Copied";
        setTimeout(function () {
          source.textContent = label;
        }, 1500);
      }
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {
        legacyCopy(text, source) ? done() : say("Copying was refused by the browser.", true);
      });
    } else if (legacyCopy(text, source)) {
      done();
    } else {
      say("Copying is not available in this browser.", true);
    }
  }

  // Without the async clipboard (a page served over plain http from another host): a selected textarea.
  function legacyCopy(text, source) {
    const area = el("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (err) {
      ok = false;
    }
    area.remove();
    if (source && document.activeElement === document.body) source.focus();
    return ok;
  }

  // --- sources: the list under each answer and a popover on each citation ----------------------------------------

  function renderSources(li, m) {
    li.querySelectorAll(".sources, .sources-title").forEach(function (node) {
      node.remove();
    });
    const sources = m.sources || [];
    if (m.role !== "assistant" || !sources.length) return;
    const title = el("p", "sources-title", "Sources");
    title.id = "sources-" + m.id;
    const ol = el("ol", "sources");
    ol.setAttribute("aria-labelledby", title.id);
    sources.forEach(function (ref) {
      const item = el("li");
      item.value = ref.number;
      item.dataset.number = ref.number;
      const link = el("a", "source-link", ref.file_name);
      link.href = ref.url;
      link.target = "_blank";
      item.appendChild(link);
      if (ref.pages && ref.pages.length) item.appendChild(document.createTextNode(", p. " + ref.pages.join(", ")));
      if (ref.quote) item.appendChild(el("span", "quote", "“" + ref.quote + "”"));
      ol.appendChild(item);
    });
    const body = li.querySelector(".message-error") || li.querySelector(".body");
    li.insertBefore(ol, body.nextSibling);
    li.insertBefore(title, ol);
  }

  // A popover (role tooltip, described-by) with the cited file, page and passage, on hover or focus of a
  // citation inside `list`; hidden on leaving it, on scrolling `pane` and by `hide()` (room.js: Escape).
  function citations(list, pane) {
    const popover = el("div", "citation-popover");
    popover.id = "citation-popover";
    popover.setAttribute("role", "tooltip");
    popover.hidden = true;
    document.body.appendChild(popover);
    let popoverFor = null;

    function citationNumber(link) {
      if (link.dataset.number) return link.dataset.number;
      const match = /\[(\d+)/.exec(link.textContent);
      return match ? match[1] : "";
    }

    function showCitation(link) {
      const li = link.closest("li.message");
      const number = citationNumber(link);
      const source = li && number ? li.querySelector('.sources li[data-number="' + number + '"]') : null;
      popover.textContent = "";
      const name = source ? source.querySelector(".source-link").textContent : "Source " + number;
      popover.appendChild(el("strong", "", name));
      const page = link.dataset.page;
      if (page) popover.appendChild(el("span", "", "Page " + page));
      const quote = source && source.querySelector(".quote");
      if (quote) popover.appendChild(el("blockquote", "", quote.textContent));
      popover.appendChild(el("span", "visually-hidden", "Opens the file in a new tab."));
      popover.hidden = false;
      popoverFor = link;
      link.setAttribute("aria-describedby", popover.id);
      const rect = link.getBoundingClientRect();
      const width = popover.offsetWidth;
      const height = popover.offsetHeight;
      const left = Math.max(8, Math.min(rect.left, window.innerWidth - width - 8));
      const below = rect.bottom + 6;
      popover.style.left = left + "px";
      popover.style.top = (below + height > window.innerHeight - 8 ? Math.max(8, rect.top - height - 6) : below) + "px";
    }

    function hideCitation() {
      if (!popoverFor) return;
      popoverFor.removeAttribute("aria-describedby");
      popoverFor = null;
      popover.hidden = true;
    }

    if (list) {
      list.addEventListener("mouseover", function (event) {
        const link = event.target.closest("a.citation");
        if (link && link !== popoverFor) showCitation(link);
      });
      list.addEventListener("mouseout", function (event) {
        const link = event.target.closest("a.citation");
        if (link && !link.contains(event.relatedTarget) && document.activeElement !== link) hideCitation();
      });
      list.addEventListener("focusin", function (event) {
        const link = event.target.closest("a.citation");
        if (link) showCitation(link);
      });
      list.addEventListener("focusout", function (event) {
        if (event.target.closest("a.citation")) hideCitation();
      });
    }
    if (pane) pane.addEventListener("scroll", hideCitation, { passive: true });
    return {
      hide: hideCitation,
      get open() {
        return popoverFor !== null;
      },
    };
  }

  // --- the composer's limit --------------------------------------------------------------------------------------

  function charCount(text) {
    // Characters as the server counts them (code points), not UTF-16 units.
    let count = 0;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code < 0xdc00 || code > 0xdfff) count++;
    }
    return count;
  }

  function tooLong(count, maxChars) {
    return "This message is " + count.toLocaleString() + " characters; the limit is " + maxChars.toLocaleString() + ". Shorten it by " + (count - maxChars).toLocaleString() + " to send.";
  }

  window.RoomParts = {
    el: el,
    setTime: setTime,
    refreshDays: refreshDays,
    copyText: copyText,
    renderSources: renderSources,
    citations: citations,
    charCount: charCount,
    tooLong: tooLong,
  };
})();
