"""The main window: builds the components, connects them and lays them out. No logic lives here;
every behaviour belongs to a controller (app/) or a widget (ui/)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QAction, QKeySequence, QUndoStack
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop_app.app.doc_actions import DocumentActions
from desktop_app.app.doc_status import DocumentStatus
from desktop_app.app.generation import GenerationController
from desktop_app.app.model_control import ModelControl
from desktop_app.app.region_editor import RegionEditor
from desktop_app.app.settings import AppSettings
from desktop_app.app.stroke import StrokeRecorder
from desktop_app.app.tools import ToolController
from desktop_app.app.worker import EngineClient
from desktop_app.document.canvas_doc import CanvasDocument
from desktop_app.document.history import History
from desktop_app.document.prompt_layout import regions_from_prompt
from desktop_app.ui import dialogs
from desktop_app.ui.attention_strip import AttentionStrip
from desktop_app.ui.canvas_view import CanvasView
from desktop_app.ui.gen_panel import GenerationPanel
from desktop_app.ui.history_strip import HistoryStrip
from desktop_app.ui.layers import CanvasLayers
from desktop_app.ui.regions_panel import RegionsPanel
from desktop_app.ui.tool_bar import ToolBar

APP_TITLE = "Diffusion Canvas"


class MainWindow(QMainWindow):
    def __init__(self, client: EngineClient, app_settings: AppSettings,
                 width: int = 512, height: int = 512) -> None:
        super().__init__()
        self.setWindowTitle(APP_TITLE)
        self.app_settings = app_settings
        self.client = client
        self.last_error = ""
        self._closed = False
        self._build_model(width, height)
        self._build_widgets()
        self._build_menus()
        self._connect()
        self._restore()

    # -- construction --------------------------------------------------------------------------
    def _build_model(self, width: int, height: int) -> None:
        s = self.app_settings
        self.doc = CanvasDocument(width, height)
        self.undo = QUndoStack(self)
        self.undo.setUndoLimit(200)
        self.recorder = StrokeRecorder(self.doc, self.undo)
        self.tool = ToolController(self.doc, self.recorder, s.brush_size, s.brush_hardness)
        self.history = History()
        self.layers = CanvasLayers(self.doc)
        self.actions_ = DocumentActions(self.doc, self.undo, self.recorder)
        self.regions = RegionEditor(self.doc, self.undo, self.tool)
        self.doc_status = DocumentStatus(self.doc, self.undo)
        self.models = ModelControl(self.client, s)

    def _build_widgets(self) -> None:
        self.view = CanvasView(self.layers, self.tool)
        self.setCentralWidget(self.view)
        self.toolbar = ToolBar(self.tool, self.view, self)
        self.addToolBar(self.toolbar)
        self.panel = GenerationPanel()
        self.attention = AttentionStrip()
        self._attention_size: tuple[int, int] | None = None  # the canvas its maps are of
        self.panel.add_below_prompt(self.attention)
        self.regions_panel = RegionsPanel(self.regions, self.panel.prompt_text,
                                          self.panel.selected_prompt_text,
                                          from_prompt=lambda: self._on_regions_from_prompt())
        self.generation = GenerationController(self.doc, self.client, self.undo, self.history,
                                               self.app_settings, self.panel.settings)
        tabs = QTabWidget()
        scroll = QScrollArea()
        scroll.setWidget(self.panel)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # Room for a vertical scrollbar too, or the panel's right edge gets cut off.
        scroll.setMinimumWidth(self.panel.sizeHint().width()
                               + scroll.verticalScrollBar().sizeHint().width() + 4)
        tabs.addTab(scroll, "Generate")
        tabs.addTab(self.regions_panel, "Regions")
        self.tabs = tabs
        side = QWidget()
        column = QVBoxLayout(side)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(tabs, 1)
        column.addWidget(self.panel.run_bar)
        self._dock("Generation", side, Qt.DockWidgetArea.RightDockWidgetArea)
        self.history_strip = HistoryStrip(self.history.limit)
        self._dock("History", self.history_strip, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.model_label = QLabel("No model")
        self.statusBar().addPermanentWidget(self.model_label)
        self.resize(1280, 860)

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.lower())
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, menu, text: str, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            if isinstance(shortcut, (list, tuple)):
                action.setShortcuts([QKeySequence(k) for k in shortcut])
            else:
                action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        K = QKeySequence.StandardKey
        bar = self.menuBar()
        m = bar.addMenu("&File")
        self._action(m, "&New canvas…", self._on_new, K.New)
        self._action(m, "&Open image…", self._on_open, K.Open)
        self._action(m, "&Paste image", self._on_paste, "Ctrl+Shift+V")
        self._action(m, "&Restore job from image…", self._on_restore_file, "Ctrl+Shift+O")
        canvas_paste = QAction("Paste image", self.view)  # plain Ctrl+V when the canvas has focus
        canvas_paste.setShortcut(K.Paste)
        canvas_paste.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        canvas_paste.triggered.connect(self._on_paste)
        self.view.addAction(canvas_paste)
        m.addSeparator()
        self._action(m, "&Save PNG…", self._on_save, K.Save)
        self._action(m, "&Copy image", self.actions_.copy_image, "Ctrl+Shift+C")
        self._action(m, "Output &folder…", self._on_output_folder)
        m.addSeparator()
        self._action(m, "&Quit", self.close, K.Quit)
        m = bar.addMenu("&Edit")
        undo = self.undo.createUndoAction(self, "&Undo")
        undo.setShortcut(K.Undo)
        redo = self.undo.createRedoAction(self, "&Redo")
        redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence(K.Redo)])
        m.addActions([undo, redo])
        m = bar.addMenu("&View")
        self._action(m, "Zoom &in", self.view.zoom_in, ["Ctrl+=", "Ctrl++"])
        self._action(m, "Zoom &out", self.view.zoom_out, "Ctrl+-")
        self._action(m, "&Fit", self.view.fit, "Ctrl+0")
        self._action(m, "&100%", self.view.actual_size, "Ctrl+1")
        m = bar.addMenu("&Mask")
        self._action(m, "Bigger brush", self.tool.bigger, "]")
        self._action(m, "Smaller brush", self.tool.smaller, "[")
        m.addSeparator()
        self._action(m, "&Grow by 8 px", self._on_grow, "Ctrl+Alt+=")
        self._action(m, "&Shrink by 8 px", self._on_shrink, "Ctrl+Alt+-")
        self._action(m, "&Invert", self.actions_.invert_mask, "Ctrl+I")
        self._action(m, "&Clear", self.actions_.clear_mask, "Ctrl+Shift+X")
        m.addSeparator()
        self._action(m, "&Load mask…", self._on_load_mask)
        self._action(m, "Sa&ve mask…", self._on_save_mask)
        m = bar.addMenu("&Regions")
        self._action(m, "&Add region", self._on_add_region, "Ctrl+R")
        self._action(m, "Paint the &mask", self.regions.paint_mask, "M")
        self._action(m, "Regions from the &prompt", self._on_regions_from_prompt, "Ctrl+Shift+R")
        m.addSeparator()
        self._action(m, "&Load layout…", self._on_load_layout)
        self._action(m, "&Save layout…", self._on_save_layout)
        m = bar.addMenu("&Generate")
        self.generate_action = self._action(m, "&Generate", self.generation.generate,
                                            ["Ctrl+Return", "Ctrl+Enter"])
        self.cancel_action = self._action(m, "&Cancel", self.generation.cancel, "Esc")
        self.generate_action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        self.cancel_action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        m.addSeparator()
        self._action(m, "&Built-in model", self._on_builtin_model)

    def _connect(self) -> None:
        p, g = self.panel, self.generation
        p.generate_clicked.connect(g.generate)
        p.cancel_clicked.connect(g.cancel)
        p.size_edited.connect(self.actions_.resize_empty)
        p.model_requested.connect(self.models.open)
        p.device_changed.connect(self.models.set_device)
        p.prompt_changed.connect(self.regions_panel.check_words)
        p.prompt_changed.connect(self._update_placement_hint)
        p.place_requested.connect(self._on_regions_from_prompt)
        p.notice.connect(self._on_status)
        self.doc.add_listener(self._on_doc_for_hint)
        self.doc.add_listener(self._on_doc_for_attention)
        self.client.progress.connect(self._on_progress)
        self.client.busy_changed.connect(self._on_busy)
        g.running_changed.connect(p.set_running)
        g.preview.connect(self.layers.set_preview)
        g.attention.connect(self._on_attention)
        g.history_added.connect(self.history_strip.add)
        g.settings_restored.connect(p.set_settings)
        g.last_seed_changed.connect(p.set_last_seed)
        g.status.connect(self._on_status)
        g.error.connect(self._on_error)
        self.attention.hovered.connect(self.layers.set_highlight)
        self.history_strip.show_requested.connect(g.show_history)
        self.history_strip.restore_requested.connect(g.restore_history)
        self.models.status.connect(self._on_model_status)
        self.models.message.connect(self._on_status)
        self.models.error.connect(self._on_error)
        self.models.device_kept.connect(self.panel.set_device)
        self.actions_.status.connect(self._on_status)
        self.actions_.error.connect(self._on_error)
        self.tool.message.connect(self._on_status)
        self.doc_status.changed.connect(p.set_canvas_info)
        self.client.model_loaded.connect(self.actions_.adopt_model_size)
        self.client.model_loaded.connect(p.adopt_model_defaults)
        self.client.model_loaded.connect(self.regions.adopt_model_defaults)
        self.view.files_dropped.connect(self.actions_.open_paths)
        self.view.image_dropped.connect(self.actions_.paste_image)
        self.doc_status.refresh()

    def _restore(self) -> None:
        s = self.app_settings
        if (geometry := s.geometry()) is not None:
            self.restoreGeometry(geometry)
        if (state := s.window_state()) is not None:
            self.restoreState(state)
        self.panel.set_settings(s.generation)
        self.panel.set_device(s.device)

    def start(self) -> None:
        """After show(): load the last-used model on the engine thread."""
        self.models.load_initial()

    # -- slots: status ----------------------------------------------------------------------------
    @Slot(str)
    def _on_status(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    @Slot(str)
    def _on_error(self, text: str) -> None:
        self.last_error = text
        self.statusBar().showMessage(text, 15000)
        box = QMessageBox(QMessageBox.Icon.Warning, APP_TITLE, text, QMessageBox.StandardButton.Ok,
                          self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()  # not exec(): never block the event loop (previews, tests)

    @Slot(str)
    def _on_model_status(self, text: str) -> None:
        self.model_label.setText(text)
        self.panel.set_model_status(text)

    @Slot(int, int, int, float)
    def _on_progress(self, job_id: int, step: int, total: int, rate: float) -> None:
        self.panel.set_progress(step, total, rate)

    @Slot(bool)
    def _on_busy(self, busy: bool) -> None:
        self.generate_action.setEnabled(not busy)

    # -- slots: dialogs ---------------------------------------------------------------------------
    def _on_new(self) -> None:
        dialog = dialogs.NewCanvasDialog(*self.doc.size, parent=self)
        if dialog.exec():
            self.actions_.new_canvas(*dialog.chosen_size())

    def _on_open(self) -> None:
        if path := dialogs.ask_open(self, "Open image"):
            self.actions_.open_path(path)

    def _on_restore_file(self) -> None:
        if path := dialogs.ask_open(self, "Restore job from image", dialogs.PARAMS_FILTER):
            self.generation.restore_file(path)

    def _on_paste(self) -> None:
        self.actions_.paste_image()

    def _on_save(self) -> None:
        if path := dialogs.ask_save(self, "Save PNG"):
            self.actions_.save_png(path)

    def _on_output_folder(self) -> None:
        if path := dialogs.ask_folder(self, "Output folder", self.app_settings.output_dir):
            self.app_settings.output_dir = path
            self._on_status(f"Generated images are saved to {path}")

    def _on_grow(self) -> None:
        self.actions_.grow_mask(8)

    def _on_shrink(self) -> None:
        self.actions_.grow_mask(-8)

    def _on_load_mask(self) -> None:
        if path := dialogs.ask_open(self, "Load mask"):
            self.actions_.load_mask(path)

    def _on_save_mask(self) -> None:
        if path := dialogs.ask_save(self, "Save mask"):
            self.actions_.save_mask(path)

    def _on_add_region(self) -> None:
        self.regions.add(self.panel.selected_prompt_text())
        self.tabs.setCurrentWidget(self.regions_panel)

    def _update_placement_hint(self, *_args: object) -> None:
        """Offered for two places or more: that is where regions pay (each region's words drawn
        from a prompt of their own). One object the built-in model already puts where its prompt
        says (position 99.5%), and a region's bias then only costs drawing (model card)."""
        places = 0 if self.doc.regions else len(regions_from_prompt(self.panel.prompt_text()))
        self.panel.show_placement_hint(places if places >= 2 else 0)

    def _on_attention(self, maps: object) -> None:
        self._attention_size = self.doc.size
        self.attention.set_maps(maps)

    def _on_doc_for_attention(self, event: str, _payload: object) -> None:
        """A canvas of another size (new canvas, another image) drops the word maps: they were of
        the picture that was there, and hovering one stretched it over the new canvas."""
        if event == "reset" and self._attention_size not in (None, self.doc.size):
            self.attention.clear()

    def _on_doc_for_hint(self, event: str, _payload: object) -> None:
        if event in ("reset", "regions"):
            self._update_placement_hint()

    def _on_regions_from_prompt(self) -> None:
        if self.actions_.regions_from_prompt(self.panel.prompt_text()):
            self.tabs.setCurrentWidget(self.regions_panel)

    def _on_load_layout(self) -> None:
        if path := dialogs.ask_open(self, "Load region layout", dialogs.LAYOUT_FILTER):
            self.actions_.load_layout(path, self.panel.prompt_text())

    def _on_save_layout(self) -> None:
        if path := dialogs.ask_save(self, "Save region layout", dialogs.LAYOUT_FILTER, ".json"):
            self.actions_.save_layout(path)

    def _on_builtin_model(self) -> None:
        self.models.open(None)

    # -- closing -------------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        """Cancel a running job, stop the engine thread and wait for it, remember the settings."""
        if not self._closed:
            self._closed = True
            self.generation.cancel()
            self.client.shutdown()
            self.generation.shutdown()
            s = self.app_settings
            s.set_geometry(self.saveGeometry(), self.saveState())
            s.brush_size = self.tool.size
            s.brush_hardness = self.tool.hardness
            s.generation = self.panel.settings()
            s.sync()
        event.accept()
