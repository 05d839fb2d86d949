// The room page: one websocket per room, the protocol of assistant_chat/rooms/events.py, no build step.
//
// Safety: text from members and models is only ever put in the page with textContent. HTML comes only from the
// server, where Markdown was rendered by a real parser and cleaned by a sanitizer (assistant_chat/rendering.py).
// Streaming: each delta carries `seq`; text is applied only in order, a gap asks the server to resume from the
// last seq held, and `assistant.done` replaces the message with the saved one.
// Exactly once: a socket resumes each answer at most once (on open, when told to, or on a gap), an answer that has
// ended ignores anything more, and a message is sent with a client id so that sending it again (after a lost
// connection or a retryable error) saves it once. tests/faults/client.py applies frames by these same rules.
(function () {
  "use strict";

  const state = JSON.parse(document.getElementById("room-state").textContent);
  const list = document.getElementById("messages");
  const composer = document.getElementById("composer");
  const input = document.getElementById("composer-input");
  const stopButton = document.getElementById("stop");
  const announcer = document.getElementById("announcer");
  const alertBox = document.getElementById("alert");
  const connection = document.getElementById("connection");
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

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
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

  function metaDetails(m) {
    if (m.role === "user") return m.status === "queued" ? "waiting for the assistant" : "";
    if (m.status === "streaming") return "";
    let text = m.model || "";
    if (m.usage && m.usage.completion_tokens) text += " · " + m.usage.prompt_tokens + "+" + m.usage.completion_tokens + " tokens";
    if (m.status !== "complete") text += " · " + m.status;
    return text;
  }

  function renderMessage(m) {
    let li = findMessage(m.id);
    if (!li) {
      li = el("li");
      li.id = "message-" + m.id;
      li.dataset.id = m.id;
      const meta = el("div", "meta");
      meta.append(el("span", "author"), el("time"), el("span", "details"));
      li.append(meta, el("div", "body"));
      // Keep messages in id order even when a resume or sync delivers them late.
      const after = Array.from(list.children).find((node) => Number(node.dataset.id) > m.id);
      list.insertBefore(li, after || null);
    }
    li.className = "message " + m.role + " status-" + m.status;
    li.dataset.status = m.status;
    li.dataset.seq = m.seq;
    li.querySelector(".author").textContent = m.role === "assistant" ? "Assistant" : m.author || "Someone";
    const time = li.querySelector("time");
    time.dateTime = m.created_at;
    time.textContent = formatTime(m.created_at);
    li.querySelector(".details").textContent = metaDetails(m);
    li.querySelector(".body").innerHTML = m.html; // sanitized on the server
    let error = li.querySelector(".message-error");
    if (m.error) {
      if (!error) li.appendChild((error = el("p", "message-error")));
      error.textContent = m.error;
    } else if (error) {
      error.remove();
    }
    lastMessageId = Math.max(lastMessageId, m.id);
    return li;
  }

  function formatTime(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return isNaN(date) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
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
      const done = document.createElement("div");
      done.innerHTML = d.html;
      announce(done.textContent);
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
    li.querySelector(".details").textContent = "";
  }

  function endStream(m) {
    if (finished.has(m.id)) return;
    finished.add(m.id);
    const s = streams.get(m.id);
    if (s) {
      const tail = s.raw.slice(s.upto);
      if (tail) announce(tail);
    }
    streams.delete(m.id);
    renderMessage(m);
    announce(m.status === "complete" ? "Answer complete." : m.status === "cancelled" ? "Answer stopped." : "Answer failed: " + m.error);
    updateStop();
  }

  function updateStop() {
    if (stopButton) stopButton.disabled = streams.size === 0;
  }

  // --- events ----------------------------------------------------------------------------------------------------

  // Follow the conversation while the reader is at the bottom; leave them be when they scrolled up to read.
  function following(change) {
    const atBottom = window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 150;
    change();
    if (atBottom) window.scrollTo(0, document.documentElement.scrollHeight);
  }

  const handlers = {
    "room.joined": function (e) {
      setPresence(e.presence);
    },
    presence: function (e) {
      setPresence(e.members);
    },
    "chat.message": function (e) {
      if (e.message.conversation_id !== state.conversation_id) return bumpConversation(e.message.conversation_id);
      following(function () {
        renderMessage(e.message);
      });
      if (e.client_id && e.client_id === pendingClientId) {
        input.value = "";
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
        });
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
    if (li) li.classList.add("unread");
  }

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

  // --- the page's controls ---------------------------------------------------------------------------------------

  if (composer) {
    composer.addEventListener("submit", function (event) {
      event.preventDefault();
      const content = input.value;
      if (!content.trim()) {
        showAlert("Message content cannot be empty");
        return;
      }
      pendingClientId = "m" + Date.now() + Math.random().toString(16).slice(2, 8);
      pendingFrame = { type: "message.send", conversation_id: state.conversation_id, content: content, client_id: pendingClientId };
      sendRetries = 0;
      send(pendingFrame);
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        composer.requestSubmit();
      }
    });
  }
  if (stopButton) {
    stopButton.addEventListener("click", function () {
      streams.forEach(function (_s, id) {
        send({ type: "turn.cancel", message_id: id });
      });
    });
  }
  document.getElementById("new-conversation").addEventListener("click", function () {
    newConversationId = "c" + Date.now();
    send({ type: "conversation.create", title: "New conversation", client_id: newConversationId });
  });
  const renameButton = document.getElementById("rename-button");
  const renameForm = document.getElementById("rename-form");
  if (renameButton && renameForm) {
    renameButton.addEventListener("click", function () {
      renameForm.hidden = false;
      renameButton.hidden = true;
      document.getElementById("rename-input").focus();
    });
    renameForm.addEventListener("submit", function (event) {
      event.preventDefault();
      send({ type: "conversation.rename", conversation_id: state.conversation_id, title: document.getElementById("rename-input").value });
      renameForm.hidden = true;
      renameButton.hidden = false;
    });
  }

  // Messages the server rendered: times in the reader's zone, and streaming answers picked up where they are.
  document.querySelectorAll("li.message time").forEach(function (node) {
    node.textContent = formatTime(node.getAttribute("datetime"));
  });
  Object.keys(state.streaming || {}).forEach(function (id) {
    streamInto(id, findMessage(id));
  });
  updateStop();
  connect();
})();
