// The room page: one websocket per room, the protocol of assistant_chat/rooms/events.py, no build step.
//
// Safety: text from members and models is only ever put in the page with textContent. HTML comes only from the
// server, where Markdown was rendered by a real parser and cleaned by a sanitizer (assistant_chat/rendering.py).
// Streaming: each delta carries `seq`; text is applied only in order, a gap asks the server to resume from the
// last seq held, and `assistant.done` replaces the message with the saved one.
// Exactly once: a socket resumes each answer at most once (on open, when told to, or on a gap), an answer that has
// ended ignores anything more, and a message is sent with a client id so that sending it again (after a lost
// connection or a retryable error) saves it once. tests/faults/client.py applies frames by these same rules.
//
// Layout: the page itself does not scroll; the message pane (#pane) does. It opens at the newest message, follows
// a streaming answer while the reader is at the bottom and otherwise offers "jump to latest"; older messages load
// as the reader scrolls up. The UI sections below the protocol add message actions (copy, regenerate and its
// versions, edit, feedback), typing, the unread marker and the composer's character limit; the parts that hold no
// protocol state (times and day separators, copying, sources and the citation popover) are room_parts.js.
(function () {
  "use strict";

  const parts = window.RoomParts; // room_parts.js: times, days, copying, sources and citations, counting
  const setTime = parts.setTime;
  const state = JSON.parse(document.getElementById("room-state").textContent);
  const list = document.getElementById("messages");
  const pane = document.getElementById("pane");
  const composer = document.getElementById("composer");
  const input = document.getElementById("composer-input");
  const stopButton = document.getElementById("stop");
  const announcer = document.getElementById("announcer");
  const alertBox = document.getElementById("alert");
  const connection = document.getElementById("connection");
  const jumpButton = document.getElementById("jump-latest");
  const counter = document.getElementById("composer-counter");
  const maxChars = Number(state.max_chars) || 8000;
  const streams = new Map(); // message id -> {seq, raw, upto, el}
  const finished = new Set(); // answers whose end arrived: nothing more of them is applied
  let socket = null;
  let retry = 0;
  let pendingClientId = null;
  let pendingFrame = null; // the message.send awaiting its chat.message: sent again after a reconnect
  let sendRetries = 0;
  let newConversationId = null;
  let lastMessageId = state.last_message_id || 0;
  let resumedOnSocket = new Set(); // answers this socket has asked to resume (at most once each)

  const el = parts.el;

  function button(text, className, label) {
    const node = el("button", className, text);
    node.type = "button";
    if (label) node.setAttribute("aria-label", label);
    return node;
  }

  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(frame));
      return true;
    }
    showAlert("Not connected; trying again…");
    return false;
  }

  function showAlert(text) {
    if (!alertBox) return;
    alertBox.textContent = text;
    alertBox.hidden = !text;
  }

  function announce(text) {
    if (!announcer || !text) return;
    const line = el("p", "", text);
    announcer.appendChild(line);
    while (announcer.childNodes.length > 5) announcer.removeChild(announcer.firstChild);
  }

  // --- messages --------------------------------------------------------------------------------------------------

  function findMessage(id) {
    return list ? list.querySelector('li.message[data-id="' + id + '"]') : null;
  }

  // A slot is a message and its versions (regenerated answers, edited questions); the page shows one per slot.
  function findSlot(slot) {
    return list ? list.querySelector('li.message[data-slot="' + slot + '"]') : null;
  }

  function metaDetails(m) {
    let text;
    if (m.role === "user") {
      text = m.status === "queued" ? "waiting for the assistant" : "";
      if (m.edited) text += (text ? " · " : "") + "edited";
      return text;
    }
    if (m.status === "streaming") return "";
    text = m.model || "";
    if (m.usage && m.usage.completion_tokens) text += " · " + m.usage.prompt_tokens + "+" + m.usage.completion_tokens + " tokens";
    if (m.status !== "complete") text += " · " + m.status;
    if (m.stopped_by) text += " · stopped by " + m.stopped_by;
    return text;
  }

  function renderMessage(m) {
    const slot = m.slot || m.version_of || m.id;
    let li = findMessage(m.id) || findSlot(slot);
    const created = !li;
    if (!li) {
      li = el("li");
      li.dataset.slot = slot;
      const meta = el("div", "meta");
      meta.append(el("span", "author"), el("time"), el("span", "details"));
      li.append(meta, el("div", "body"));
      // Keep messages in slot (root id) order even when a resume or sync delivers them late.
      const after = Array.from(list.children).find((node) => Number(node.dataset.slot) > slot);
      list.insertBefore(li, after || null);
    } else if (Number(li.dataset.id) !== m.id) {
      closeForm(li); // another version of this slot takes its place
      citations.hide();
    }
    li.id = "message-" + m.id;
    li.dataset.id = m.id;
    li.className = "message " + m.role + " status-" + m.status;
    li.dataset.status = m.status;
    li.dataset.seq = m.seq;
    li.dataset.role = m.role;
    li.dataset.authorId = m.author_id == null ? "" : m.author_id;
    li.dataset.content = m.content || "";
    li.dataset.requestedBy = m.requested_by_id == null ? "" : m.requested_by_id;
    li.dataset.edited = m.edited ? "true" : "";
    if (m.reply_to) li.dataset.replyTo = m.reply_to;
    li.dataset.version = m.version || 1;
    li.dataset.versions = (m.versions && m.versions.length ? m.versions : [m.id]).join(",");
    if (m.feedback) {
      li.dataset.up = m.feedback.up || 0;
      li.dataset.down = m.feedback.down || 0;
    }
    // Feedback is per member: broadcasts carry the counts; only a page's own fetch carries the member's vote.
    if (m.my_feedback !== undefined) li.dataset.mine = (m.my_feedback && m.my_feedback.value) || "";
    else if (created) li.dataset.mine = "";
    li.querySelector(".author").textContent = m.role === "assistant" ? "Assistant" : m.author || "Someone";
    setTime(li.querySelector("time"), m.created_at);
    li.querySelector(".details").textContent = metaDetails(m);
    li.querySelector(".body").innerHTML = m.html; // sanitized on the server
    let error = li.querySelector(".message-error");
    if (m.error) {
      if (!error) li.insertBefore((error = el("p", "message-error")), li.querySelector(".body").nextSibling);
      error.textContent = m.error;
    } else if (error) {
      error.remove();
    }
    parts.renderSources(li, m);
    decorate(li);
    lastMessageId = Math.max(lastMessageId, m.id);
    if (created) parts.refreshDays(list);
    return li;
  }

  function startStream(m) {
    streamInto(m.id, renderMessage(m));
    updateStop();
  }

  // An answer in flight: completed blocks (server-rendered HTML) above the tail still arriving (plain text).
  function streamInto(id, li) {
    const body = li.querySelector(".body");
    body.textContent = "";
    const blocks = el("div", "blocks");
    const tail = el("div", "tail");
    body.append(blocks, tail);
    streams.set(Number(id), { seq: 0, raw: "", upto: 0, blocks: blocks, tail: tail });
  }

  function applyDelta(d) {
    if (finished.has(d.message_id)) return; // the saved answer is shown; nothing more of it applies
    let s = streams.get(d.message_id);
    if (!s) {
      // A delta for an answer this page has not seen start: fetch the conversation since what it holds.
      if (!resumedOnSocket.has(d.message_id)) {
        resumedOnSocket.add(d.message_id);
        sync();
      }
      return;
    }
    const first = d.from_seq || d.seq;
    if (d.seq <= s.seq) return; // already have it
    if (first !== s.seq + 1) {
      resume(d.message_id); // a gap: ask for the rest from what this page holds
      return;
    }
    s.seq = d.seq;
    s.raw += d.text;
    if (d.html) {
      s.blocks.insertAdjacentHTML("beforeend", d.html); // sanitized on the server, rendered once per block
      s.upto = d.html_upto;
      enhanceCode(s.blocks);
    }
    s.tail.textContent = s.raw.slice(s.upto);
    const li = findMessage(d.message_id);
    if (li) {
      li.dataset.seq = d.seq;
      li.dataset.chars = s.raw.length; // what the page holds: its resume says so, and tests read it
    }
  }

  // Ask for an answer's text after what this page holds, once per socket: the server sends each socket a turn's
  // text once, so a second request could only bring duplicates.
  function resume(messageId) {
    const s = streams.get(messageId);
    if (!s || finished.has(messageId) || resumedOnSocket.has(messageId)) return;
    resumedOnSocket.add(messageId);
    send({ type: "turn.resume", message_id: messageId, last_seq: s.seq, chars: s.raw.length });
  }

  function sync() {
    if (state.conversation_id) {
      send({ type: "conversation.sync", conversation_id: state.conversation_id, after_id: lastMessageId });
    }
  }

  // A question whose answer started is no longer waiting.
  function answered(questionId) {
    const li = questionId ? findMessage(questionId) : null;
    if (!li || li.dataset.status !== "queued") return;
    li.dataset.status = "complete";
    li.className = li.className.replace("status-queued", "status-complete");
    li.querySelector(".details").textContent = li.dataset.edited === "true" ? "edited" : "";
    decorate(li); // its actions (edit) are offered again
  }

  function endStream(m) {
    if (finished.has(m.id)) return;
    finished.add(m.id);
    streams.delete(m.id);
    following(function () {
      renderMessage(m);
    });
    // The answer is read out once, whole, when it ends (not block by block while it streams).
    const end = m.status === "complete" ? "Answer complete." : m.status === "cancelled" ? "Answer stopped." : "Answer " + m.status + (m.error ? ": " + m.error : ".");
    announce(end + " " + excerpt(m.content, 400));
    updateStop();
  }

  function excerpt(text, limit) {
    text = (text || "").replace(/\s+/g, " ").trim();
    return text.length > limit ? text.slice(0, limit) + "…" : text;
  }

  let stopFromKeyboard = false;

  // Who may stop an answer: whoever asked for it (the question's author, or who regenerated it) and room managers.
  function mayStop(id) {
    if (state.may_manage || state.user_id == null) return true;
    const li = findMessage(id);
    if (!li) return false;
    const me = String(state.user_id);
    if (li.dataset.requestedBy) return li.dataset.requestedBy === me;
    const question = li.dataset.replyTo && findMessage(li.dataset.replyTo);
    return !question || question.dataset.authorId === me;
  }

  function stoppable() {
    return Array.from(streams.keys()).filter(mayStop);
  }

  function updateStop() {
    if (!stopButton) return;
    const hadFocus = document.activeElement === stopButton;
    stopButton.disabled = stoppable().length === 0;
    // A disabled button drops focus to the page: send it back to the composer, where the reader goes on.
    if (stopButton.disabled && (hadFocus || stopFromKeyboard)) {
      stopFromKeyboard = false;
      if (input) input.focus();
    }
  }

  // --- the message pane: open at the newest, follow while at the bottom, load older messages above ---------------

  let stick = true; // the reader is at the bottom: new text keeps them there
  let followedTo = -1; // the scrollTop the pane was last put at to follow (or seen at while following)

  function atBottom() {
    return !pane || pane.scrollHeight - pane.scrollTop - pane.clientHeight < 60;
  }

  function toBottom() {
    if (!pane) return;
    pane.scrollTop = pane.scrollHeight;
    followedTo = pane.scrollTop;
    stick = true;
    jumpButton.hidden = true;
    clearUnreadMarker();
  }

  // Follow the conversation while the reader is at the bottom; leave them be when they scrolled up to read.
  // Applied at once (not in the next frame), so that a paint never shows the newest line below the pane.
  function following(change) {
    // Scrolled up since the pane last followed, but the scroll event (dispatched with the next frame) has not come
    // yet: a delta in between must not pull the reader back down.
    if (pane && stick && followedTo >= 0 && pane.scrollTop < followedTo - 2) stick = false;
    change();
    if (!pane) return;
    if (stick) {
      pane.scrollTop = pane.scrollHeight;
      followedTo = pane.scrollTop;
    } else if (jumpButton.hidden) {
      jumpButton.hidden = false;
    }
  }

  if (pane) {
    pane.addEventListener(
      "scroll",
      function () {
        stick = atBottom();
        if (stick) followedTo = pane.scrollTop;
        jumpButton.hidden = stick;
        if (stick && !document.hidden) clearUnreadMarker();
        if (pane.scrollTop < 300) loadOlder();
      },
      { passive: true }
    );
    jumpButton.addEventListener("click", function () {
      toBottom();
      pane.focus({ preventScroll: true });
    });
  }

  let hasEarlier = Boolean(state.has_more);
  let loadingOlder = false;
  const olderBox = document.getElementById("older");
  const olderButton = document.getElementById("load-older");

  function firstSlot() {
    const first = list && list.querySelector("li.message");
    return first ? Number(first.dataset.slot) : 0;
  }

  function loadOlder(then) {
    if (!hasEarlier || loadingOlder || !state.older_url) return;
    const before = firstSlot();
    if (!before) return;
    loadingOlder = true;
    if (olderButton) olderButton.textContent = "Loading earlier messages…";
    fetch(state.older_url + "?before=" + before, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        // Keep what the reader looks at in place while messages are added above it.
        const height = pane.scrollHeight;
        const top = pane.scrollTop;
        (data.messages || []).forEach(function (m) {
          if (!findMessage(m.id)) insertOlder(m);
        });
        parts.refreshDays(list);
        pane.scrollTop = top + (pane.scrollHeight - height);
        hasEarlier = Boolean(data.has_more);
        if (olderBox) olderBox.hidden = !hasEarlier;
        announce((data.messages || []).length + " earlier messages loaded.");
        if (then) setTimeout(then, 0);
      })
      .catch(function () {
        showAlert("Could not load earlier messages; scroll up to try again.");
      })
      .finally(function () {
        loadingOlder = false;
        if (olderButton) olderButton.textContent = "Load earlier messages";
      });
  }

  function insertOlder(m) {
    const li = renderMessage(m);
    if (m.status === "streaming" && !streams.has(m.id) && !finished.has(m.id)) streamInto(m.id, li);
  }

  if (olderButton) {
    olderButton.addEventListener("click", function () {
      if (state.older_url) loadOlder();
      else window.location.search = "?c=" + state.conversation_id + "&all=1";
    });
  }

  // --- day separators and the unread marker ----------------------------------------------------------------------

  let unreadMarker = null;

  // "New messages" above the first message that arrived while the reader was scrolled up or away.
  function markUnread(li) {
    if (unreadMarker || !li || (stick && !document.hidden)) return;
    unreadMarker = el("li", "unread-marker", "New messages");
    list.insertBefore(unreadMarker, li);
  }

  function clearUnreadMarker() {
    if (!unreadMarker) return;
    const marker = unreadMarker;
    unreadMarker = null;
    setTimeout(function () {
      marker.remove();
    }, 4000); // seen: it stays a moment so that the reader sees where the new part began
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && stick) clearUnreadMarker();
  });

  // --- events ----------------------------------------------------------------------------------------------------

  const handlers = {
    "room.joined": function (e) {
      setPresence(e.presence);
    },
    presence: function (e) {
      setPresence(e.members);
    },
    "chat.message": function (e) {
      if (e.message.conversation_id !== state.conversation_id) return bumpConversation(e.message.conversation_id);
      const known = Boolean(findMessage(e.message.id));
      following(function () {
        const li = renderMessage(e.message);
        if (!known) markUnread(li);
      });
      stopTyping(e.message.author);
      if (!known && String(e.message.author_id) !== String(state.user_id)) {
        announce((e.message.author || "Someone") + ": " + excerpt(e.message.content, 300));
      }
      if (e.client_id && e.client_id === pendingClientId) {
        if (pendingFrame && pendingFrame.type === "message.send") {
          input.value = "";
          updateCounter();
        }
        pendingClientId = null;
        pendingFrame = null;
        sendRetries = 0;
        showAlert("");
      }
    },
    "assistant.start": function (e) {
      if (e.message.conversation_id !== state.conversation_id || finished.has(e.message.id)) return;
      answered(e.message.reply_to);
      if (!streams.has(e.message.id)) {
        following(function () {
          startStream(e.message);
          markUnread(findMessage(e.message.id));
        });
        announce("The assistant is answering.");
      }
      // Joined mid-turn: the text so far comes on request, from the seq this page holds.
      if (e.resume) resume(e.message.id);
    },
    "assistant.delta": function (e) {
      if (e.conversation_id !== state.conversation_id) return;
      following(function () {
        applyDelta(e);
      });
    },
    "assistant.done": function (e) {
      if (e.message.conversation_id !== state.conversation_id) return;
      endStream(e.message);
    },
    "assistant.error": function (e) {
      if (e.message.conversation_id !== state.conversation_id) return;
      endStream(e.message);
    },
    "message.updated": function (e) {
      // A saved message changed (feedback counts, a version switch, an edit): shown in place, never re-streamed.
      const m = e.message;
      if (m.conversation_id !== state.conversation_id || streams.has(m.id) || !findMessage(m.id)) return;
      renderMessage(m);
    },
    "feedback.updated": function (e) {
      const li = findMessage(e.message_id); // only the version on show; another one is fetched fresh when browsed
      if (!li) return;
      li.dataset.up = e.up;
      li.dataset.down = e.down;
      decorate(li);
    },
    "feedback.mine": function (e) {
      const li = findMessage(e.message_id);
      if (!li) return;
      li.dataset.mine = e.value || "";
      decorate(li);
    },
    "member.typing": function (e) {
      if (e.conversation_id !== state.conversation_id || String(e.user_id) === String(state.user_id)) return;
      startTyping(e.user || "Someone");
    },
    "room.updated": function (e) {
      applyRoomSettings(e.room);
    },
    "conversation.created": function (e) {
      addConversation(e.conversation);
      if (e.client_id && e.client_id === newConversationId) {
        window.location.search = "?c=" + e.conversation.id;
      }
    },
    "conversation.renamed": function (e) {
      const link = document.querySelector('#conversation-list li[data-id="' + e.conversation.id + '"] a');
      if (link) link.textContent = e.conversation.title;
      if (e.conversation.id === state.conversation_id) {
        document.getElementById("conversation-title").textContent = e.conversation.title;
        const field = document.getElementById("rename-input");
        if (field && renameForm && renameForm.hidden) field.value = e.conversation.title;
      }
    },
    "conversation.archived": function (e) {
      const c = e.conversation;
      const li = document.querySelector('#conversation-list li[data-id="' + c.id + '"]');
      if (li) li.classList.toggle("archived", Boolean(c.archived));
      if (c.id === state.conversation_id && archiveButton) {
        archiveButton.dataset.archived = c.archived ? "true" : "false";
        archiveButton.textContent = c.archived ? "Unarchive" : "Archive";
        announce(c.archived ? "Conversation archived." : "Conversation unarchived.");
      }
    },
    "room.resync": function () {
      sync(); // the server lost touch with the other processes for a while: fetch what may have been missed
    },
    error: function (e) {
      if (e.client_id && e.client_id === pendingClientId) {
        if (e.retryable && pendingFrame && sendRetries < 8) {
          // A passing fault on the server: the same frame again (its client id makes it count once).
          sendRetries += 1;
          showAlert("The server is having trouble; sending again…");
          const frame = pendingFrame;
          setTimeout(function () {
            if (pendingFrame === frame) send(frame);
          }, 500 * Math.pow(2, Math.min(sendRetries, 4)));
          return;
        }
        pendingClientId = null;
        pendingFrame = null;
        sendRetries = 0;
      }
      showAlert(e.message); // the composer keeps its text
    },
  };

  function setPresence(names) {
    const node = document.getElementById("presence");
    if (node) node.textContent = names.join(", ");
  }

  function addConversation(c) {
    const ul = document.getElementById("conversation-list");
    if (!ul || ul.querySelector('li[data-id="' + c.id + '"]')) return;
    const empty = ul.querySelector("li.muted");
    if (empty) empty.remove();
    const li = el("li");
    li.dataset.id = c.id;
    const a = el("a", "", c.title);
    a.href = "?c=" + c.id;
    li.appendChild(a);
    ul.insertBefore(li, ul.firstChild);
  }

  function bumpConversation(id) {
    const li = document.querySelector('#conversation-list li[data-id="' + id + '"]');
    if (li && li.parentNode.firstChild !== li) li.parentNode.insertBefore(li, li.parentNode.firstChild);
    if (li && !li.classList.contains("unread")) {
      li.classList.add("unread");
      li.appendChild(el("span", "unread-label", "new"));
    }
  }

  const REPLY_MODES = {
    every: "Answer every message",
    addressed: "Answer only messages that address the assistant (@assistant)",
  };

  function applyRoomSettings(room) {
    const set = function (id, value) {
      const node = document.getElementById(id);
      if (node && value !== undefined && value !== null) node.textContent = value;
    };
    set("room-title", room.name);
    set("room-assistant", room.assistant);
    set("room-model", room.model_label || room.model);
    if (room.temperature !== undefined) set("room-temperature", room.temperature === null ? "default" : String(room.temperature));
    if (room.metadata_filter !== undefined) {
      const filter = room.metadata_filter;
      set("room-filter", filter && Object.keys(filter).length ? JSON.stringify(filter) : "all files");
    }
    set("room-replies", REPLY_MODES[room.reply_mode] || room.reply_mode);
    if (room.name) document.title = room.name + " · Assistant chat";
    announce("The room's settings changed.");
  }

  // --- typing ----------------------------------------------------------------------------------------------------

  const typers = new Map(); // name -> timer
  const typingLine = document.getElementById("typing");

  function renderTyping() {
    if (!typingLine) return;
    const names = Array.from(typers.keys());
    typingLine.textContent = !names.length
      ? ""
      : names.length === 1
        ? names[0] + " is typing…"
        : names.slice(0, -1).join(", ") + " and " + names[names.length - 1] + " are typing…";
  }

  function startTyping(name) {
    clearTimeout(typers.get(name));
    typers.set(
      name,
      setTimeout(function () {
        stopTyping(name);
      }, 6000)
    );
    renderTyping();
  }

  function stopTyping(name) {
    if (!name || !typers.has(name)) return;
    clearTimeout(typers.get(name));
    typers.delete(name);
    renderTyping();
  }

  let typingSentAt = 0;

  function typed() {
    const now = Date.now();
    if (!state.conversation_id || !input.value.trim() || now - typingSentAt < 2500) return;
    typingSentAt = now;
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "typing.notify", conversation_id: state.conversation_id }));
    }
  }

  // --- message actions: copy, code blocks, regenerate and versions, edit, feedback --------------------------------

  function copyText(text, source) {
    parts.copyText(text, source, function (message, failed) {
      if (failed) showAlert(message);
      else announce(message);
    });
  }

  // A "Copy code" button on each code block (the server highlighted it once; this only adds the button).
  function enhanceCode(root) {
    root.querySelectorAll("pre").forEach(function (pre) {
      if (pre.parentNode.classList.contains("code-block")) return;
      const wrap = el("div", "code-block");
      pre.parentNode.insertBefore(wrap, pre);
      wrap.appendChild(pre);
      const copy = button("Copy code", "copy-code");
      copy.dataset.action = "copy-code";
      wrap.appendChild(copy);
    });
  }

  function isMine(li) {
    return state.user_id != null && li.dataset.authorId !== "" && String(li.dataset.authorId) === String(state.user_id);
  }

  // The action bar under a message, rebuilt from the message's data attributes whenever it changes.
  function decorate(li) {
    enhanceCode(li.querySelector(".body"));
    let bar = li.querySelector(".message-actions");
    const focusedAction = bar && bar.contains(document.activeElement) ? document.activeElement.dataset.action : null;
    if (bar) bar.remove();
    const status = li.dataset.status;
    if (status === "streaming") return;
    bar = el("div", "message-actions");
    bar.setAttribute("role", "group");
    bar.setAttribute("aria-label", "Message actions");
    const who = li.dataset.role === "assistant" ? "answer" : "message";
    const copy = button("Copy", "", "Copy " + who);
    copy.dataset.action = "copy";
    bar.appendChild(copy);
    if (li.dataset.role === "assistant") {
      const ids = (li.dataset.versions || "").split(",").filter(Boolean);
      const versions = ids.length;
      if (versions > 1) {
        const version = ids.indexOf(li.dataset.id) + 1 || Number(li.dataset.version) || versions;
        const nav = el("span", "versions");
        const previous = button("‹", "", "Previous version");
        previous.dataset.action = "version-previous";
        previous.disabled = version <= 1;
        const next = button("›", "", "Next version");
        next.dataset.action = "version-next";
        next.disabled = version >= versions;
        const label = el("span", "version-label", version + "/" + versions);
        label.setAttribute("aria-label", "Version " + version + " of " + versions);
        nav.append(previous, label, next);
        bar.appendChild(nav);
      }
      if (status !== "queued") {
        const regenerate = button("Regenerate", "", "Regenerate answer");
        regenerate.dataset.action = "regenerate";
        bar.appendChild(regenerate);
      }
      if (status === "complete" || status === "cancelled") {
        const mine = li.dataset.mine || "";
        // The visible text is the accessible name (votes so far); aria-pressed says whether it is this member's.
        const up = button("Good " + (li.dataset.up || 0), "feedback-up");
        up.title = "Good answer (votes so far)";
        up.dataset.action = "feedback-up";
        up.setAttribute("aria-pressed", mine === "up" ? "true" : "false");
        const down = button("Bad " + (li.dataset.down || 0), "feedback-down");
        down.title = "Bad answer (votes so far)";
        down.dataset.action = "feedback-down";
        down.setAttribute("aria-pressed", mine === "down" ? "true" : "false");
        bar.append(up, down);
      }
    } else if (isMine(li) && status !== "queued") {
      const ids = (li.dataset.versions || "").split(",").filter(Boolean);
      if (ids.length > 1) {
        const version = ids.indexOf(li.dataset.id) + 1 || ids.length;
        const note = el("span", "version-label muted", "Version " + version + "/" + ids.length);
        bar.appendChild(note);
      }
      const edit = button("Edit", "", "Edit and resend");
      edit.dataset.action = "edit";
      bar.appendChild(edit);
    }
    const form = li.querySelector(".feedback-form, .edit-form");
    li.insertBefore(bar, form || null);
    if (focusedAction) {
      const again = bar.querySelector('[data-action="' + focusedAction + '"]');
      if (again) again.focus();
    }
  }

  function closeForm(li, focusAction) {
    const form = li.querySelector(".feedback-form, .edit-form");
    if (form) form.remove();
    const back = focusAction && li.querySelector('.message-actions [data-action="' + focusAction + '"]');
    if (back) back.focus();
  }

  function escapeCloses(form, li, focusAction) {
    form.addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        closeForm(li, focusAction);
      }
    });
  }

  function openFeedback(li, value) {
    const id = Number(li.dataset.id);
    const already = li.dataset.mine === value;
    closeForm(li);
    // A second press on the same vote takes it back.
    const chosen = already ? "" : value;
    send({ type: "feedback.set", message_id: id, value: chosen || "none" });
    li.dataset.mine = chosen;
    decorate(li);
    if (!chosen) return;
    const form = el("form", "feedback-form");
    const fieldId = "feedback-comment-" + id;
    const label = el("label", "visually-hidden", "Comment on this answer (optional)");
    label.htmlFor = fieldId;
    const field = el("input");
    field.type = "text";
    field.id = fieldId;
    field.maxLength = 1000;
    field.placeholder = "Add a comment (optional)";
    const save = el("button", "", "Send comment");
    save.type = "submit";
    const cancel = button("Close", "secondary");
    form.append(label, field, save, cancel);
    li.appendChild(form);
    cancel.addEventListener("click", function () {
      closeForm(li, "feedback-" + value);
    });
    escapeCloses(form, li, "feedback-" + value);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      send({ type: "feedback.set", message_id: id, value: chosen, comment: field.value });
      announce("Thank you for the feedback.");
      closeForm(li, "feedback-" + value);
    });
    field.focus();
  }

  function openEdit(li) {
    closeForm(li);
    const id = Number(li.dataset.id);
    const form = el("form", "edit-form");
    const fieldId = "edit-" + id;
    const label = el("label", "visually-hidden", "Edit your message");
    label.htmlFor = fieldId;
    const field = el("textarea");
    field.id = fieldId;
    field.rows = 3;
    field.value = li.dataset.content || li.querySelector(".body").textContent;
    const save = el("button", "", "Send edited");
    save.type = "submit";
    const cancel = button("Cancel", "secondary");
    form.append(label, field, save, cancel);
    li.appendChild(form);
    cancel.addEventListener("click", function () {
      closeForm(li, "edit");
    });
    escapeCloses(form, li, "edit");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const content = field.value;
      if (!content.trim()) return showAlert("Message content cannot be empty");
      if (parts.charCount(content) > maxChars) return showAlert(parts.tooLong(parts.charCount(content), maxChars));
      pendingClientId = "e" + Date.now() + Math.random().toString(16).slice(2, 8);
      pendingFrame = { type: "message.edit", message_id: id, content: content, client_id: pendingClientId };
      sendRetries = 0;
      if (send(pendingFrame)) closeForm(li);
      if (input) input.focus();
    });
    field.focus();
  }

  function regenerate(li) {
    if (send({ type: "message.regenerate", message_id: Number(li.dataset.id) })) announce("Regenerating the answer.");
  }

  // Browse a slot's versions: the one asked for is fetched (with this member's own vote) and shown in place.
  function showVersion(li, step) {
    const ids = (li.dataset.versions || "").split(",").filter(Boolean);
    const wanted = ids[ids.indexOf(li.dataset.id) + step];
    if (!wanted) return;
    const action = step < 0 ? "version-previous" : "version-next";
    fetch("/rooms/" + encodeURIComponent(state.room) + "/messages/" + wanted + ".json", {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        if (streams.has(Number(li.dataset.id))) return; // a new version started meanwhile: it stays in view
        const shown = renderMessage(data.message);
        announce("Version " + data.message.version + " of " + ids.length + " shown.");
        const again = shown.querySelector('.message-actions [data-action="' + action + '"]');
        const focus = again && !again.disabled ? again : shown.querySelector(".message-actions button");
        if (focus) focus.focus();
      })
      .catch(function () {
        showAlert("Could not load that version.");
      });
  }

  if (list) {
    list.addEventListener("click", function (event) {
      const target = event.target.closest("button[data-action]");
      if (!target || !list.contains(target)) return;
      const li = target.closest("li.message");
      switch (target.dataset.action) {
        case "copy":
          copyText(li.dataset.content || li.querySelector(".body").innerText, target);
          break;
        case "copy-code":
          copyText(target.parentNode.querySelector("pre").innerText, target);
          break;
        case "regenerate":
          regenerate(li);
          break;
        case "version-previous":
          showVersion(li, -1);
          break;
        case "version-next":
          showVersion(li, 1);
          break;
        case "edit":
          openEdit(li);
          break;
        case "feedback-up":
          openFeedback(li, "up");
          break;
        case "feedback-down":
          openFeedback(li, "down");
          break;
      }
    });
  }

  // --- sources: the list under each answer and a popover on each citation ----------------------------------------

  const citations = parts.citations(list, pane);

  // --- socket ----------------------------------------------------------------------------------------------------

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + "/ws/rooms/" + state.room + "/");
    socket.addEventListener("open", function () {
      retry = 0;
      connection.textContent = "Connected";
      connection.classList.remove("offline");
      resumedOnSocket = new Set();
      // The rest of every answer still streaming (an end may be close), then whatever arrived while away, then a
      // message that was not confirmed before the connection dropped.
      streams.forEach(function (_s, id) {
        resume(id);
      });
      sync();
      if (pendingFrame) send(pendingFrame);
    });
    socket.addEventListener("message", function (message) {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch (err) {
        return;
      }
      const handler = handlers[event.type];
      if (handler) handler(event);
    });
    socket.addEventListener("close", function (event) {
      connection.classList.add("offline");
      if (event.code === 4403) {
        connection.textContent = "You no longer have access to this room.";
        return;
      }
      if (event.code === 4401) {
        connection.textContent = "You are signed out. Reload the page to sign in again.";
        return;
      }
      connection.textContent = "Disconnected; reconnecting…";
      if (event.code === 4012) {
        setTimeout(connect, 100 + Math.random() * 400); // that server is restarting: another one takes us now
        return;
      }
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 250 * Math.pow(2, retry));
    });
  }

  // --- the composer: Enter sends, a counter near the limit, refusal above it (never cut) --------------------------

  function updateCounter() {
    if (!counter || !input) return;
    const count = parts.charCount(input.value);
    const over = count > maxChars;
    counter.hidden = count < maxChars * 0.9;
    counter.textContent = counter.hidden ? "" : count.toLocaleString() + " / " + maxChars.toLocaleString() + (over ? " (" + (count - maxChars).toLocaleString() + " too many)" : "");
    counter.classList.toggle("over", over);
    input.setAttribute("aria-invalid", over ? "true" : "false");
  }

  if (composer) {
    composer.addEventListener("submit", function (event) {
      event.preventDefault();
      const content = input.value;
      if (!content.trim()) {
        showAlert("Message content cannot be empty");
        return;
      }
      const count = parts.charCount(content);
      if (count > maxChars) {
        showAlert(parts.tooLong(count, maxChars)); // refused here, whole: the text stays in the composer
        input.focus();
        return;
      }
      pendingClientId = "m" + Date.now() + Math.random().toString(16).slice(2, 8);
      pendingFrame = { type: "message.send", conversation_id: state.conversation_id, content: content, client_id: pendingClientId };
      sendRetries = 0;
      send(pendingFrame);
      toBottom();
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        composer.requestSubmit();
      }
    });
    input.addEventListener("input", function () {
      updateCounter();
      typed();
    });
    updateCounter();
  }
  if (stopButton) {
    stopButton.addEventListener("click", function (event) {
      stopFromKeyboard = event.detail === 0; // a click from Enter or Space has no pointer detail
      stoppable().forEach(function (id) {
        send({ type: "turn.cancel", message_id: id });
      });
    });
  }

  // --- conversations: new, rename (Escape closes), archive, the list as a drawer on narrow screens ----------------

  document.getElementById("new-conversation").addEventListener("click", function () {
    newConversationId = "c" + Date.now();
    // No title: the server names it "New conversation" until the first answer gives it one.
    send({ type: "conversation.create", client_id: newConversationId });
  });
  const renameButton = document.getElementById("rename-button");
  const renameForm = document.getElementById("rename-form");
  const archiveButton = document.getElementById("archive-button");

  function closeRename() {
    renameForm.hidden = true;
    renameButton.hidden = false;
    renameButton.focus();
  }

  if (renameButton && renameForm) {
    renameButton.addEventListener("click", function () {
      renameForm.hidden = false;
      renameButton.hidden = true;
      const field = document.getElementById("rename-input");
      field.value = document.getElementById("conversation-title").textContent;
      field.focus();
      field.select();
    });
    renameForm.addEventListener("submit", function (event) {
      event.preventDefault();
      send({ type: "conversation.rename", conversation_id: state.conversation_id, title: document.getElementById("rename-input").value });
      closeRename();
    });
    renameForm.addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        event.preventDefault();
        closeRename();
      }
    });
    document.getElementById("rename-cancel").addEventListener("click", closeRename);
  }
  if (archiveButton) {
    archiveButton.addEventListener("click", function () {
      const archived = archiveButton.dataset.archived !== "true";
      send({ type: "conversation.archive", conversation_id: state.conversation_id, archived: archived });
    });
  }
  const roomNode = document.getElementById("room");
  const drawerToggle = document.getElementById("toggle-conversations");

  function setDrawer(open) {
    roomNode.classList.toggle("show-conversations", open);
    drawerToggle.setAttribute("aria-expanded", open ? "true" : "false");
  }

  if (drawerToggle) {
    drawerToggle.addEventListener("click", function () {
      const open = drawerToggle.getAttribute("aria-expanded") !== "true";
      setDrawer(open);
      if (open) document.getElementById("room-search-input").focus();
    });
    document.getElementById("close-conversations").addEventListener("click", function () {
      setDrawer(false);
      drawerToggle.focus();
    });
    document.getElementById("conversations").addEventListener("keydown", function (event) {
      if (event.key === "Escape" && drawerToggle.getAttribute("aria-expanded") === "true") {
        setDrawer(false);
        drawerToggle.focus();
      }
    });
  }
  const settingsToggle = document.getElementById("toggle-settings");
  if (settingsToggle) {
    settingsToggle.addEventListener("click", function () {
      const open = settingsToggle.getAttribute("aria-expanded") !== "true";
      settingsToggle.setAttribute("aria-expanded", open ? "true" : "false");
      document.getElementById("room-header").classList.toggle("show-settings", open);
    });
  }
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && citations.open) citations.hide();
  });

  // Messages the server rendered: times in the reader's zone, actions, separators, and streaming answers picked up
  // where they are. Then the pane opens at the newest message (or at the message a link points to).
  if (list) {
    list.querySelectorAll("li.message").forEach(function (li) {
      setTime(li.querySelector("time"), li.querySelector("time").getAttribute("datetime"));
      decorate(li);
    });
    parts.refreshDays(list);
  }
  Object.keys(state.streaming || {}).forEach(function (id) {
    streamInto(id, findMessage(id));
  });
  // A link to one message (a search hit) shows it, loading earlier messages until it is in the page.
  function reveal(id, tries) {
    const target = document.getElementById("message-" + id);
    if (target) {
      target.scrollIntoView({ block: "center" });
      stick = atBottom();
      jumpButton.hidden = stick;
      return;
    }
    if (hasEarlier && tries < 200) loadOlder(function () {
      reveal(id, tries + 1);
    });
  }

  if (pane) {
    toBottom();
    const wanted = /^#message-(\d+)$/.exec(window.location.hash);
    if (wanted) reveal(wanted[1], 0);
    else if (hasEarlier && pane.scrollHeight <= pane.clientHeight) loadOlder(); // nothing to scroll up to yet
  }
  updateStop();
  connect();
})();
