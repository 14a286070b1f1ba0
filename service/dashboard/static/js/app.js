// Entry point: login, classroom and session picker, and hash routing between the views.
//   #/login   #/pick   #/live/<session id>   #/history/<classroom id>[/<session id>]
import { ApiError, api, getToken, q, setToken } from "./api.js";
import { HistoryView } from "./history.js";
import { LiveView } from "./live.js";

const $ = (id) => document.getElementById(id);
const VIEWS = ["view-login", "view-pick", "view-live", "view-history"];
const state = { me: null, view: null, classroomId: null };

function show(id) {
  for (const v of VIEWS) $(v).hidden = v !== id;
  $("nav").hidden = id === "view-login";
  const heading = $(id).querySelector("h2");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

function staff() {
  return state.me && (state.me.role === "admin" || state.me.role === "teacher");
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const res = await api("/auth/login", {
      method: "POST",
      body: { username: $("login-user").value, password: $("login-pass").value },
    });
    setToken(res.access_token);
    $("login-pass").value = "";
    go("#/pick");
  } catch (err) {
    $("login-error").textContent = `Sign-in failed: ${err.message}`;
  }
}

async function logout() {
  try {
    await api("/auth/logout", { method: "POST" });
  } catch (_) {
    // the token is dropped either way
  }
  setToken(null);
  state.me = null;
  go("#/login");
}

async function loadSessions() {
  const id = Number($("pick-classroom").value);
  state.classroomId = id;
  const select = $("pick-session");
  select.replaceChildren();
  if (!id) return;
  const page = await api(`/sessions${q({ classroom_id: id, running: true })}`);
  for (const s of page.items) {
    const opt = document.createElement("option");
    opt.value = s.id;
    opt.textContent = `${s.title || s.id.slice(0, 8)} (since ${new Date(s.started_at).toLocaleTimeString()})`;
    select.append(opt);
  }
  if (!page.items.length) {
    const opt = document.createElement("option");
    opt.value = "";
    opt.textContent = "no running session";
    select.append(opt);
  }
  $("open-live").disabled = !page.items.length;
}

async function showPick() {
  show("view-pick");
  $("start-box").hidden = !staff();
  // Analysts read history only (the live endpoints refuse them).
  for (const id of ["live-picker", "open-live"]) $(id).hidden = !staff();
  const page = await api("/classrooms?limit=1000");
  const select = $("pick-classroom");
  select.replaceChildren();
  for (const c of page.items) {
    const opt = document.createElement("option");
    opt.value = String(c.id);
    opt.textContent = `${c.name} (${c.privacy_mode.replace("_", " ")})`;
    select.append(opt);
  }
  if (state.classroomId) select.value = String(state.classroomId);
  $("pick-status").textContent = page.items.length ? "" : "You have no classrooms yet.";
  await loadSessions();
}

async function startSession() {
  const status = $("pick-status");
  try {
    const sess = await api("/sessions", {
      method: "POST",
      body: { classroom_id: Number($("pick-classroom").value), title: $("start-title").value },
    });
    status.textContent = "Session started.";
    go(`#/live/${sess.id}`);
  } catch (err) {
    status.textContent = `Could not start a session: ${err.message}`;
  }
}

async function rosterOf(classroomId) {
  const names = new Map();
  try {
    const page = await api(`/students${q({ classroom_id: classroomId, limit: 1000 })}`);
    for (const s of page.items) names.set(s.code, s.display_name || null);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 403) throw err;
  }
  return names;
}

async function showLive(sessionId) {
  show("view-live");
  const session = await api(`/sessions/${sessionId}`);
  state.classroomId = session.classroom_id;
  const perStudent = session.privacy_mode === "per_student";
  const roster = perStudent ? await rosterOf(session.classroom_id) : new Map();
  const seatMaps = [];
  if (perStudent) {
    for (const id of session.camera_ids) {
      seatMaps.push(await api(`/cameras/${encodeURIComponent(id)}/seatmap`));
    }
  }
  const view = new LiveView(session, {
    roster,
    seatMaps,
    staff: staff(),
    onUnauthorized: () => go("#/login"),
  });
  state.view = view;
  $("live-history").onclick = () => go(`#/history/${session.classroom_id}/${session.id}`);
  await view.start();
}

async function showHistory(classroomId, sessionId) {
  show("view-history");
  state.classroomId = classroomId;
  const classroom = await api(`/classrooms/${classroomId}`);
  const view = new HistoryView(classroom, {
    onOpen: (sid) => go(`#/history/${classroomId}/${sid}`),
  });
  state.view = view;
  await view.start(sessionId);
}

async function stopSession() {
  const button = $("live-stop");
  if (button.dataset.confirm !== "1") {
    button.dataset.confirm = "1";
    button.textContent = "Confirm: stop session";
    setTimeout(() => {
      button.dataset.confirm = "";
      button.textContent = "Stop session";
    }, 5000);
    return;
  }
  const view = state.view;
  try {
    await api(`/sessions/${view.session.id}/stop`, { method: "POST" });
    button.hidden = true;
    $("live-message").textContent = "Session stopped.";
  } catch (err) {
    $("live-message").textContent = `Could not stop: ${err.message}`;
  }
}

async function route() {
  $("app-error").textContent = "";
  if (state.view) {
    state.view.stop();
    state.view = null;
  }
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  if (!getToken() || parts[0] === "login" || parts[0] === "") {
    if (getToken() && parts[0] === "") return go("#/pick");
    show("view-login");
    $("login-user").focus();
    return;
  }
  try {
    if (!state.me) {
      state.me = await api("/auth/me");
      $("whoami").textContent = `${state.me.username} (${state.me.role})`;
    }
    if (parts[0] === "live" && parts[1]) await showLive(parts[1]);
    else if (parts[0] === "history" && parts[1]) await showHistory(Number(parts[1]), parts[2]);
    else await showPick();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return go("#/login");
    $("app-error").textContent = `Something went wrong: ${err.message}`;
  }
}

function init() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("pick-classroom").addEventListener("change", () => loadSessions());
  $("open-live").addEventListener("click", () => go(`#/live/${$("pick-session").value}`));
  $("open-history").addEventListener("click", () => go(`#/history/${$("pick-classroom").value}`));
  $("start-session").addEventListener("click", startSession);
  $("nav-pick").addEventListener("click", () => go("#/pick"));
  $("nav-history").addEventListener("click", () => {
    if (state.classroomId) go(`#/history/${state.classroomId}`);
    else go("#/pick");
  });
  $("live-stop").addEventListener("click", stopSession);
  $("live-alert-badge").addEventListener("click", () => {
    $("live-alerts-heading").scrollIntoView({ block: "start" });
    $("live-alerts-heading").focus({ preventScroll: true });
  });
  $("live-window").addEventListener("change", () => state.view && state.view.render());
  window.addEventListener("hashchange", route);
  window.addEventListener("emo:unauthorized", () => {
    state.me = null;
  });
  route();
}

init();
