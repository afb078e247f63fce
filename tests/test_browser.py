"""JupyterLab in a real browser: a notebook runs and its slider redraws the figure.

nbval runs every notebook's cells in a kernel but never draws a widget, so a
broken front end (a missing lab extension, a widget that renders nothing, an
image that never updates) passes it. This test starts JupyterLab on a free
localhost port, opens :data:`NOTEBOOK` in headless Chromium driven by Selenium,
runs it with the Run menu's "Run All Cells" (``notebook:run-all-cells``),
waits for the kernel to go idle, presses the arrow keys on the first slider and
checks that the widget's image changed, both its ``src`` and its pixels. A
screenshot is saved in the test's tmp_path and copied to tests/artifacts/browser/
(gitignored); the test prints both paths.

Chromium and ChromeDriver are Debian's packages (``make browser``, which
``make test`` runs, installs them): Selenium is handed both paths, so Selenium
Manager never runs and nothing is downloaded. The test skips, saying so, only
when either is missing. JupyterLab gets throw-away config, data, runtime,
IPython, settings, workspace and checkpoint folders, autosave off and a save
hook that refuses (and records) every save, so it neither reads a person's
state nor leaves any, and never rewrites the notebook in the working tree.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
# The notebook driven in the browser, relative to notebooks/. Its first slider
# must redraw an image in the same output (as FigureView-based widgets do).
NOTEBOOK = "02_ground_false.ipynb"
ARTIFACTS = ROOT / "tests" / "artifacts" / "browser"

# Debian's packages chromium and chromium-driver (see `make browser`).
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Headless, as root, on a closed network: no sandbox (root), no GPU, /tmp for
# shared memory, and none of the background connections that would be refused.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)

SERVER_START_S = 180  # JupyterLab answering /api/status (slow on 2 busy cores)
PAGE_LOAD_S = 180  # the notebook open and its kernel idle
RUN_ALL_S = 300  # the whole notebook in fast mode
REDRAW_S = 60  # the figure redrawn after the slider moved
ARROW_PRESSES = 10

# JupyterLab user settings, one file per plugin, in the throw-away settings folder.
LAB_SETTINGS = {
    # Never write the notebook back: running it marks it dirty.
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # Every cell in the DOM, so the widget's output exists wherever it is scrolled.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # No news question in a toast over the notebook, no update check.
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}

# Page config: no build check, which would busy the server while the page loads
# (the lab extensions are prebuilt; nothing is ever built).
PAGE_CONFIG = {"buildCheck": False, "buildAvailable": False}

# Server config: checkpoints outside the working tree, and every save refused and
# recorded, as a second guard besides autosave off.
SERVER_CONFIG = """\
# Written by tests/test_browser.py for one throw-away JupyterLab server.
def refuse_save(model, path, contents_manager, **kwargs):
    with open({saves!r}, "a", encoding="utf-8") as f:
        f.write(path + "\\n")
    raise RuntimeError("tests/test_browser.py: this JupyterLab must not save " + path)


c.ContentsManager.pre_save_hook = refuse_save
c.FileCheckpoints.checkpoint_dir = {checkpoints!r}
"""


def _missing_browser() -> list[str]:
    return [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]


pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        bool(_missing_browser()),
        reason=(
            f"needs Debian's chromium and chromium-driver, not found: {', '.join(_missing_browser())}; "
            "install them with `make browser` (apt-get install chromium chromium-driver)"
        ),
    ),
]


@dataclass
class Lab:
    """A running JupyterLab server."""

    url: str  # ends with "/"
    token: str
    log: Path
    saves: Path

    def api(self, path: str) -> object:
        """GET a REST endpoint, parsed from JSON."""
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def kernel_states(self) -> dict[str, str]:
        """Execution state ("starting", "idle", "busy", ...) of each session's kernel, by notebook path."""
        try:
            sessions = self.api("api/sessions")
        except OSError:  # a slow answer on a busy machine: ask again at the next poll
            return {}
        return {s["path"]: s["kernel"]["execution_state"] for s in sessions if s.get("kernel")}

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log, for failure messages."""
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(process: subprocess.Popen, runtime: Path, token: str, log: Path) -> str:
    """Wait until the server answers /api/status; return its URL, read from the server's runtime file."""
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-4000:]
            pytest.fail(f"JupyterLab exited with code {process.returncode} before answering:\n{tail}")
        for info_file in runtime.glob("jpserver-*.json"):
            try:
                url = json.loads(info_file.read_text(encoding="utf-8"))["url"]
                request = urllib.request.Request(url + "api/status", headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(request, timeout=5):
                    return url
            except (OSError, ValueError, KeyError):
                pass  # file half-written or server not listening yet
        time.sleep(0.25)
    tail = log.read_text(encoding="utf-8", errors="replace")[-4000:]
    pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s:\n{tail}")


def _stop_server(process: subprocess.Popen, url: str | None, token: str) -> None:
    """Shut the server down through its API (which stops the kernels too), else by signals."""
    if process.poll() is None and url is not None:
        request = urllib.request.Request(
            url + "api/shutdown", method="POST", headers={"Authorization": f"token {token}"}
        )
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except OSError:
            pass
    for sig, wait_s in ((None, 20), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if sig is not None and process.poll() is None:
            os.killpg(process.pid, sig)  # the server's own session, started below
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """JupyterLab serving notebooks/ with throw-away state, in fast mode; shut down even on failure."""
    state = tmp_path / "jupyter"
    folders = {
        name: state / name for name in ("config", "data", "runtime", "ipython", "settings", "workspaces", "checkpoints")
    }
    for folder in folders.values():
        folder.mkdir(parents=True)
    for plugin, settings in LAB_SETTINGS.items():
        path = folders["settings"] / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings), encoding="utf-8")
    (folders["config"] / "labconfig").mkdir()
    (folders["config"] / "labconfig" / "page_config.json").write_text(json.dumps(PAGE_CONFIG), encoding="utf-8")
    saves = state / "saves.txt"
    (folders["config"] / "jupyter_server_config.py").write_text(
        SERVER_CONFIG.format(saves=str(saves), checkpoints=str(folders["checkpoints"])), encoding="utf-8"
    )
    env = os.environ | {
        "REGDAKIT_FAST": "1",
        "OMP_NUM_THREADS": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "JUPYTER_CONFIG_DIR": str(folders["config"]),
        "JUPYTER_DATA_DIR": str(folders["data"]),
        "JUPYTER_RUNTIME_DIR": str(folders["runtime"]),
        "IPYTHONDIR": str(folders["ipython"]),
        "JUPYTERLAB_SETTINGS_DIR": str(folders["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(folders["workspaces"]),
    }
    env.pop("JUPYTER_PATH", None)  # no extra config or kernels from the caller's environment
    env.pop("JUPYTER_CONFIG_PATH", None)
    token = secrets.token_hex(24)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--IdentityProvider.token={token}",  # ServerApp.token, less its deprecation warning
        "--ServerApp.ip=127.0.0.1",
        f"--port={_free_port()}",  # if taken meanwhile, the server tries the next; its runtime file tells
        f"--ServerApp.root_dir={NOTEBOOKS}",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = tmp_path / "jupyterlab.log"
    url = None
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            command, cwd=NOTEBOOKS, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            url = _wait_for_server(process, folders["runtime"], token, log)
            yield Lab(url=url, token=token, log=log, saves=saves)
        finally:
            _stop_server(process, url, token)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Headless Debian Chromium through Debian's ChromeDriver, with a fresh profile."""
    options = Options()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager (which would download one) never runs.
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: webdriver.Chrome, timeout: float, what: str, condition: Callable[[], object]) -> object:
    """Wait until ``condition()`` is truthy and return it; fail saying ``what`` was awaited."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.25).until(lambda _: condition())
    except TimeoutException:
        pytest.fail(f"timed out after {timeout} s waiting for {what}")


def _prompts(driver: webdriver.Chrome) -> list[str]:
    """The input prompts of the notebook's code cells: "[3]:", "[*]:", "[ ]:"."""
    return driver.execute_script(
        "return [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt')]"
        ".map(e => e.textContent.trim())"
    )


def _open_notebook(driver: webdriver.Chrome, lab: Lab) -> None:
    driver.get(f"{lab.url}lab/tree/{quote(NOTEBOOK)}?token={lab.token}")
    _wait(driver, PAGE_LOAD_S, "the notebook's cells", lambda: _prompts(driver))
    _wait(driver, PAGE_LOAD_S, "the notebook's kernel to be idle", lambda: lab.kernel_states().get(NOTEBOOK) == "idle")


# The Run menu's item, by its label: JupyterLab 4 binds it to "runmenu:run-all",
# which runs "notebook:run-all-cells" on a notebook.
RUN_ALL_ITEM = (
    "//li[contains(@class, 'lm-Menu-item')]"
    "[.//div[contains(@class, 'lm-Menu-itemLabel')][normalize-space()='Run All Cells']]"
)


def _run_all(driver: webdriver.Chrome, lab: Lab) -> None:
    """Run > Run All Cells, then wait until every cell ran and the kernel is idle."""
    # Cells are queued ("[*]") at once; a mutation observer sees that however fast they run.
    driver.execute_script(
        """
        window.regdakitQueued = false;
        const notebook = document.querySelector('.jp-NotebookPanel .jp-Notebook');
        new MutationObserver(() => {
            if ([...notebook.querySelectorAll('.jp-InputArea-prompt')].some(e => e.textContent.includes('*'))) {
                window.regdakitQueued = true;
            }
        }).observe(notebook, {subtree: true, childList: true, characterData: true});
        """
    )
    run_menu = driver.find_element(By.XPATH, "//li[contains(@class, 'lm-MenuBar-item')][normalize-space()='Run']")
    run_menu.click()
    item = _wait(
        driver,
        30,
        "the Run menu's 'Run All Cells'",
        lambda: [e for e in driver.find_elements(By.XPATH, RUN_ALL_ITEM) if e.is_displayed()],
    )[0]
    item.click()
    _wait(driver, 30, "Run All Cells to queue the cells", lambda: driver.execute_script("return window.regdakitQueued"))
    _wait(
        driver,
        RUN_ALL_S,
        f"{NOTEBOOK} to finish running (no '[*]' prompt, kernel idle)",
        lambda: not any("*" in p for p in _prompts(driver)) and lab.kernel_states().get(NOTEBOOK) == "idle",
    )
    # Errors render as stderr; a traceback among them means a cell raised.
    errors = driver.execute_script(
        "return [...document.querySelectorAll('.jp-OutputArea-output')]"
        ".filter(e => e.dataset.mimeType === 'application/vnd.jupyter.stderr')"
        ".map(e => e.textContent).filter(t => t.includes('Traceback'))"
    )
    assert not errors, f"{NOTEBOOK} raised in the browser:\n" + "\n".join(errors)[-4000:]
    prompts = _prompts(driver)
    unrun = [i for i, p in enumerate(prompts) if not p.strip("[]:").isdigit()]
    assert not unrun, f"code cells {unrun} of {NOTEBOOK} did not run; prompts: {prompts}"


def _first_slider(driver: webdriver.Chrome) -> tuple[WebElement, WebElement, WebElement]:
    """The first slider widget's handle and readout, and the widget image in the same output."""
    found = _wait(
        driver,
        REDRAW_S,
        "a rendered slider widget and its image",
        lambda: driver.execute_script(
            """
            for (const slider of document.querySelectorAll('.jp-OutputArea .jupyter-widgets.widget-slider')) {
                const output = slider.closest('.jp-OutputArea-output');
                const handle = slider.querySelector('.noUi-handle');
                const readout = slider.querySelector('.widget-readout');
                const image = output && output.querySelector('img.widget-image');
                if (handle && readout && image && image.complete && image.naturalWidth > 0) {
                    return [handle, readout, image];
                }
            }
            return null;
            """
        ),
    )
    return tuple(found)


def _aria(handle: WebElement, name: str) -> float:
    """A slider handle's ``aria-valuenow``, ``aria-valuemin`` or ``aria-valuemax``."""
    return float(handle.get_attribute(f"aria-{name}"))


def _src(image: WebElement) -> str:
    return image.get_attribute("src") or ""


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def _save_screenshot(driver: webdriver.Chrome, tmp_path: Path, name: str) -> list[Path]:
    """Save the window to tmp_path and tests/artifacts/browser/; return both paths."""
    shot = tmp_path / name
    driver.save_screenshot(str(shot))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    copy = ARTIFACTS / name
    shutil.copyfile(shot, copy)
    return [shot, copy]


def _wait_until_stable(driver: webdriver.Chrome, image: WebElement) -> None:
    """Wait until the image's ``src`` stays the same for a second and has loaded: the last redraw landed."""
    deadline = time.monotonic() + REDRAW_S
    while time.monotonic() < deadline:
        src = _src(image)
        time.sleep(1.0)
        if _src(image) == src and image.get_property("complete"):
            return
    pytest.fail(f"the widget's image kept changing for {REDRAW_S} s")


def _browser_console(driver: webdriver.Chrome) -> str:
    try:
        return "\n".join(entry["message"] for entry in driver.get_log("browser"))[-3000:]
    except WebDriverException as error:
        return f"(unavailable: {error.msg})"


def test_run_all_then_a_slider_redraws_the_figure(
    lab: Lab, browser: webdriver.Chrome, tmp_path: Path, capsys: pytest.CaptureFixture
):
    assert (NOTEBOOKS / NOTEBOOK).is_file(), f"{NOTEBOOKS / NOTEBOOK} is missing"
    stem = Path(NOTEBOOK).stem
    seconds = {}
    clock = time.monotonic()
    try:
        _open_notebook(browser, lab)
        seconds["open"], clock = time.monotonic() - clock, time.monotonic()
        _run_all(browser, lab)
        seconds["run all"], clock = time.monotonic() - clock, time.monotonic()

        handle, readout, image = _first_slider(browser)
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", image)
        before_src, before_png = _src(image), image.screenshot_as_png
        start, low, high = (_aria(handle, name) for name in ("valuenow", "valuemin", "valuemax"))
        assert high > low, f"the first slider cannot move: value {start} in [{low}, {high}]"
        key, sign = (Keys.ARROW_RIGHT, 1) if high - start >= start - low else (Keys.ARROW_LEFT, -1)
        before_readout = readout.text
        for _ in range(ARROW_PRESSES):
            handle.send_keys(key)
        _wait(browser, REDRAW_S, "the slider's readout to change", lambda: readout.text != before_readout)
        end = _aria(handle, "valuenow")
        assert (end - start) * sign > 0, f"{key!r} moved the slider the wrong way: {start} -> {end}"
        _wait(browser, REDRAW_S, "the widget's image to change", lambda: _src(image) != before_src)
        _wait_until_stable(browser, image)  # every press redraws; compare against the last one
        after_png = image.screenshot_as_png
        seconds["slider"] = time.monotonic() - clock
        shots = _save_screenshot(browser, tmp_path, f"{stem}.png")
    except (AssertionError, WebDriverException, pytest.fail.Exception):
        try:
            failed = _save_screenshot(browser, tmp_path, f"{stem}-failed.png")[1]
        except WebDriverException as error:
            failed = f"(none: {error.msg})"
        print(f"screenshot: {failed}\nbrowser console:\n{_browser_console(browser)}\n")
        print(f"JupyterLab log:\n{lab.log_tail()}")
        raise
    with capsys.disabled():
        timing = ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items())
        print(f"\ntest_browser: {NOTEBOOK} ({timing}); screenshot after the slider moved: {shots[1]} (and {shots[0]})")

    before, after = _pixels(before_png), _pixels(after_png)
    assert before.std() > 10, "the widget's image is blank"
    assert before.shape == after.shape, f"the figure changed size: {before.shape} -> {after.shape}"
    changed = int((np.abs(before - after).sum(axis=-1) > 30).sum())
    assert changed > 100, f"moving the slider {start} -> {end} changed only {changed} pixels of the figure"
    assert not lab.saves.exists(), f"JupyterLab tried to save: {lab.saves.read_text(encoding='utf-8')}"
