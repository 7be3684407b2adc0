"""In the real Blender window (the stage's binary under Xvfb): play one scenario of `tests/window/plays`, driven
by real input events, record what the window shows, write it as JSON, quit.

    blender --enable-event-simulate --python driver.py -- MODULE:FUNCTION PARAMS.json FACTS.json

A play is a generator function `play(ui, **params)`: it yields seconds to wait (the window goes on drawing and
handling events meanwhile: modal operators, app timers, redraws), or delegates with `yield from ui.…`. Input
goes through Blender's own `Window.event_simulate` (Blender's UI tests do the same; with
--enable-event-simulate the window takes no other input). Buttons are found as a person finds them: the mouse
moves over the sidebar and Blender says which button is under it (its Python command or data path, copied by
Blender's own `ui.copy_*_button` operators). What the play records (`ui.record`) goes to the host's test, which
asserts it; an exception in the play is recorded with its traceback.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import bpy

Steps = Generator[float, None, Any]
STEP = 8  # pixels between probes down a column: less than a button's height
TABS = 32  # pixels of the sidebar's category tabs, at its right
ADDON = "bl_ext.user_default.sam3d"


class UI:
    """What a play may do with the window: wait, look, move, click, type, and record what it saw."""

    def __init__(self, shots: Path) -> None:
        self.facts: dict[str, Any] = {}
        self.shots = shots
        self.facts_path = Path()

    @property
    def window(self) -> bpy.types.Window:
        """The main window, looked up anew each time: loading a file replaces what Python held of it."""
        return bpy.context.window_manager.windows[0]

    # --- time -------------------------------------------------------------------------------------------

    def until(self, condition: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Steps:
        """Wait (the window running) until `condition()` holds; the timeout only catches a hang."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"never happened within {timeout:.0f} s: {what or condition}")
            yield 0.05
        return condition()

    def frames(self, count: int = 3) -> Steps:
        """Let the window handle its events and redraw a few times."""
        for _ in range(count):
            yield 0.05

    # --- the sidebar ------------------------------------------------------------------------------------

    def area(self, kind: str = "VIEW_3D") -> bpy.types.Area:
        """The window's area of that kind; the largest area becomes one when there is none."""
        areas = list(self.window.screen.areas)
        found = next((a for a in areas if a.type == kind), None)
        if found is None:
            found = max(areas, key=lambda a: a.width * a.height)
            found.type = kind
        return found

    def split(self, kind: str, factor: float = 0.5) -> Steps:
        """Split the 3D Viewport in two, side by side, the new half an editor of `kind` (a person's drag of an
        area corner); return the new area."""
        view = self.area("VIEW_3D")
        before = {a.as_pointer() for a in self.window.screen.areas}
        with bpy.context.temp_override(window=self.window, area=view, region=self.region(view, "WINDOW")):
            bpy.ops.screen.area_split(direction="VERTICAL", factor=factor)
        yield from self.frames(3)
        made = next(a for a in self.window.screen.areas if a.as_pointer() not in before)
        made.type = kind
        yield from self.frames(3)
        return made

    def region(self, area: bpy.types.Area, kind: str = "UI") -> bpy.types.Region:
        return next(r for r in area.regions if r.type == kind)

    def sidebar(self, kind: str | bpy.types.Area = "VIEW_3D", tab: str = "SAM 3D") -> Steps:
        """Open the editor's sidebar (N) on the add-on's tab, at Blender's default width; return the region."""
        area = self.area(kind) if isinstance(kind, str) else kind
        area.spaces[0].show_region_ui = True
        area.tag_redraw()
        yield from self.frames(4)
        region = self.region(area)
        region.active_panel_category = tab
        area.tag_redraw()
        yield from self.frames(4)
        return region

    def redraw(self) -> None:
        for area in self.window.screen.areas:
            area.tag_redraw()

    def button_at(self, region: bpy.types.Region, x: int, y: int) -> Steps:
        """What Blender says is under the mouse at (x, y): an operator's Python command, a property's data path,
        or ''."""
        self.window.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
        yield 0.02
        wm = bpy.context.window_manager
        wm.clipboard = ""
        area = next(a for a in self.window.screen.areas if any(r == region for r in a.regions))
        with bpy.context.temp_override(window=self.window, area=area, region=region):
            if bpy.ops.ui.copy_python_command_button.poll():
                bpy.ops.ui.copy_python_command_button()
            elif bpy.ops.ui.copy_data_path_button.poll():
                bpy.ops.ui.copy_data_path_button(full_path=True)
        return wm.clipboard

    COLUMNS = (0.5, 0.75, 0.25, 0.62, 0.87, 0.37, 0.12, 0.56, 0.69, 0.81, 0.44, 0.31, 0.19, 0.06, 0.94)

    def find(self, region: bpy.types.Region, wanted: str, columns: tuple[float, ...] = COLUMNS, nth: int = 1,
             timeout: float = 30.0, below: int | None = None, pages: int = 1) -> Steps:
        """The window coordinates of a button whose command or data path contains `wanted`, scanning the
        sidebar's panels top to bottom as a person's eye would (from height `below` when given), column by
        column (fractions of the panels' width, the category tabs left out); `nth` counts separate buttons
        down a column. With `pages` > 1 the sidebar is scrolled down with the wheel to look further, and left
        where the button shows."""
        deadline = time.monotonic() + timeout
        width = region.width - TABS
        top = min(below, region.y + region.height - 6) if below is not None else region.y + region.height - 6
        page = 0
        while True:
            for fraction in columns:
                x = region.x + int(width * fraction)
                found, inside = 0, False
                for y in range(top, region.y + 4, -STEP):
                    under = yield from self.button_at(region, x, y)
                    hit = wanted in under
                    if hit and not inside:
                        found += 1
                        if found == nth:
                            return x, y - STEP // 2
                    inside = hit
            page += 1
            if page < pages:
                yield from self.scroll(region, down=6)
                continue
            if pages > 1:
                page = 0
                yield from self.scroll(region, up=40)
            if time.monotonic() > deadline:
                yield from self.shot("find-failed")
                raise AssertionError(f"no button {wanted!r} in the {region.type} region")
            self.redraw()
            yield 0.2

    def open_panel(self, region: bpy.types.Region, expect: str, after: str = 'open_folder(task_uuid="")',
                   index: int = 0) -> Steps:
        """Open a closed sub-panel with a click on its header, as a person does: the `index`-th closed header
        under the button `after`; `expect` (a button the panel draws) tells that it opened, the sidebar scrolled
        with the mouse wheel to see it when it lies below, and back to the top afterwards."""
        for offset in (20, 16, 24, 12, 28):
            header = (yield from self._under(region, after, index)) - offset - index * 26
            yield from self.click((region.x + 60, header))
            yield from self.frames(3)
            seen = yield from self._scrolled_to(region, expect, header)
            yield from self.scroll(region, up=40)
            if seen:
                return header
            header = (yield from self._under(region, after, index)) - offset - index * 26
            yield from self.click((region.x + 60, header))  # not that one: closed again
        yield from self.shot("open-panel-failed")
        raise AssertionError(f"no sub-panel showing {expect!r} opened")

    def _under(self, region: bpy.types.Region, after: str, index: int) -> Steps:
        """The bottom edge of the button `after`, the sidebar scrolled down until the `index`-th header under it
        lies inside the region (a click below the region lands in another editor)."""
        for _ in range(12):
            x, y = yield from self.find(region, after)
            while after in (yield from self.button_at(region, x, y - 3)):
                y -= 3
            if y - 28 - index * 26 > region.y + 6:
                break
            yield from self.scroll(region, down=1)
        return y

    def _scrolled_to(self, region: bpy.types.Region, expect: str, below: int) -> Steps:
        for page in range(4):
            top = below - 8 if page == 0 else region.y + region.height - 6
            for probe in range(top, region.y + 4, -STEP):
                for fraction in (0.3, 0.7):
                    x = region.x + int((region.width - TABS) * fraction)
                    if expect in (yield from self.button_at(region, x, probe)):
                        return True
            yield from self.scroll(region, down=8)
        return False

    def scroll(self, region: bpy.types.Region, down: int = 0, up: int = 0) -> Steps:
        """Turn the mouse wheel over the region."""
        x, y = self.center(region)
        yield from self.move(x, y)
        for kind, count in (("WHEELDOWNMOUSE", down), ("WHEELUPMOUSE", up)):
            for _ in range(count):
                self.window.event_simulate(type=kind, value="PRESS", x=x, y=y)
            if count:
                yield from self.frames(2)

    def buttons(self, region: bpy.types.Region, fraction: float = 0.5) -> Steps:
        """Every button met going down one column of the region: {command or path: [y, …]}."""
        seen: dict[str, list[int]] = {}
        x = region.x + int(region.width * fraction)
        for y in range(region.y + region.height - 6, region.y + 4, -STEP):
            under = yield from self.button_at(region, x, y)
            if under:
                seen.setdefault(under, []).append(y)
        return seen

    # --- input ------------------------------------------------------------------------------------------

    def move(self, x: int, y: int) -> Steps:
        self.window.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
        yield 0.05

    def click(self, at: tuple[int, int], button: str = "LEFTMOUSE", **modifiers: bool) -> Steps:
        x, y = at
        yield from self.move(x + 1, y)  # a hand arrives at the button (Blender highlights what it moves onto)
        yield from self.move(x, y)
        self.window.event_simulate(type=button, value="PRESS", x=x, y=y, **modifiers)
        yield 0.02
        self.window.event_simulate(type=button, value="RELEASE", x=x, y=y, **modifiers)
        yield 0.1

    def key(self, kind: str, at: tuple[int, int] | None = None, **modifiers: bool) -> Steps:
        """Press and release a key (with ctrl=, shift=, alt= held), the mouse over `at` when given."""
        if at is not None:
            yield from self.move(*at)
        where = {"x": at[0], "y": at[1]} if at is not None else {}
        self.window.event_simulate(type=kind, value="PRESS", **modifiers, **where)
        yield 0.02
        self.window.event_simulate(type=kind, value="RELEASE", **modifiers, **where)
        yield 0.1

    def drag(self, start: tuple[int, int], end: tuple[int, int], steps: int = 8) -> Steps:
        yield from self.move(*start)
        self.window.event_simulate(type="LEFTMOUSE", value="PRESS", x=start[0], y=start[1])
        yield 0.05
        for i in range(1, steps + 1):
            x = start[0] + (end[0] - start[0]) * i // steps
            y = start[1] + (end[1] - start[1]) * i // steps
            self.window.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
            yield 0.03
        self.window.event_simulate(type="LEFTMOUSE", value="RELEASE", x=end[0], y=end[1])
        yield 0.1

    def file_browser(self, path: str, timeout: float = 20.0) -> Steps:
        """In the File Browser an operator just opened (its own window, Blender's default): go to `path` (a
        folder, or a file to pick) and press Return, as a person typing the path would."""
        wm = bpy.context.window_manager
        yield from self.until(lambda: any(a.type == "FILE_BROWSER" for w in wm.windows for a in w.screen.areas),
                              timeout, "a File Browser")
        window, area = next((w, a) for w in wm.windows for a in w.screen.areas if a.type == "FILE_BROWSER")
        yield from self.frames(4)
        target = Path(path)
        params = area.spaces[0].params
        self.facts.setdefault("browser_opened_at", []).append(_text(params.directory))
        folder, name = (target, "") if target.is_dir() else (target.parent, target.name)
        params.directory = str(folder).encode() if isinstance(params.directory, bytes) else str(folder)
        if name:
            params.filename = name
        area.tag_redraw()
        yield from self.frames(4)
        window.event_simulate(type="RET", value="PRESS")
        window.event_simulate(type="RET", value="RELEASE")
        yield from self.until(lambda: not any(a.type == "FILE_BROWSER" for w in wm.windows for a in w.screen.areas),
                              timeout, "the File Browser closed")
        yield from self.frames(4)

    def center(self, region: bpy.types.Region, fx: float = 0.5, fy: float = 0.5) -> tuple[int, int]:
        return region.x + int(region.width * fx), region.y + int(region.height * fy)

    # --- seeing -----------------------------------------------------------------------------------------

    def shot(self, name: str) -> Steps:
        """A screenshot of the whole screen (ImageMagick reads the X display), for a person and for the test."""
        self.redraw()
        yield from self.frames(3)
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{name}.png"
        subprocess.run(["import", "-window", "root", str(path)], check=True)
        self.facts.setdefault("shots", []).append(str(path))
        return path

    def pixels(self, path: Path) -> Any:
        """A screenshot's pixels, (height, width, RGBA) top row first, read by Blender itself."""
        import numpy as np

        image = bpy.data.images.load(str(path))
        w, h = image.size
        buf = np.empty(w * h * 4, np.float32)
        image.pixels.foreach_get(buf)
        bpy.data.images.remove(image)
        return buf.reshape(h, w, 4)[::-1]

    def status_bar(self, name: str) -> Steps:
        """The left part of the status bar (where `status_text_set` writes, in place of the key hints) as
        pixels, the mouse parked at the window's top-left corner so the hints stay the same."""
        yield from self.move(5, self.window.height - 5)
        path = yield from self.shot(name)
        rows = self.pixels(path)
        return rows[-24:, : int(rows.shape[1] * 0.15), :3]

    def reports(self) -> list[str]:
        """Every report shown so far (the status bar's and the Info editor's), oldest first: copied from an Info
        editor, as a person would (the timeline at the bottom turns into one for a moment)."""
        area = min(self.window.screen.areas, key=lambda a: a.width * a.height)
        kind = area.type
        area.type = "INFO"
        try:
            with bpy.context.temp_override(window=self.window, area=area, region=self.region(area, "WINDOW")):
                bpy.ops.info.select_all(action="SELECT")
                bpy.ops.info.report_copy()
        finally:
            area.type = kind
        return [line for line in bpy.context.window_manager.clipboard.splitlines() if line.strip()]

    def record(self, **facts: Any) -> None:
        self.facts.update(facts)

    def flush(self) -> None:
        """Write the facts now (a play that quits Blender itself, or gets it killed)."""
        self.facts_path.write_text(json.dumps(self.facts, default=str))

    def call(self, operator: Callable[..., Any], area: bpy.types.Area | str = "VIEW_3D", **props: Any) -> Any:
        """Run an operator as from that editor's main region (a play's setup, not what is being tested)."""
        where = self.area(area) if isinstance(area, str) else area
        with bpy.context.temp_override(window=self.window, area=where, region=self.region(where, "WINDOW")):
            return operator(**props)

    # --- the add-on -------------------------------------------------------------------------------------

    def prefs(self, **values: Any) -> Any:
        prefs = bpy.context.preferences.addons[ADDON].preferences
        for key, value in values.items():
            setattr(prefs, key, value)
        return prefs

    def module(self, name: str) -> Any:
        return sys.modules[f"{ADDON}.{name}"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def main() -> None:
    argv = sys.argv[sys.argv.index("--") + 1:]
    target, params_path, facts_path = argv[0], Path(argv[1]), Path(argv[2])
    params = json.loads(params_path.read_text())
    module_name, function = target.split(":")
    sys.path.insert(0, str(Path(__file__).parent / "plays"))
    play = getattr(importlib.import_module(module_name), function)
    ui = UI(Path(params.pop("_shots")))
    ui.facts_path = facts_path
    steps: Iterator[float] | None = None

    def finish(error: str = "") -> None:
        if error:
            ui.facts["error"] = error
        ui.flush()
        print(f"driver: {target} {'failed' if error else 'played'}", flush=True)
        bpy.ops.wm.quit_blender()

    def tick() -> float | None:
        nonlocal steps
        try:
            if steps is None:
                steps = play(ui, **params)
            return max(0.0, float(next(steps)))
        except StopIteration:
            finish()
        except Exception:
            finish(traceback.format_exc())
        return None

    # The first step after the window is up: the splash is off in the stage's preferences.
    bpy.app.timers.register(tick, first_interval=float(os.environ.get("SAM3D_PLAY_DELAY", "0.5")),
                            persistent=True)


main()
