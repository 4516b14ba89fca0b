"""The generation panel: prompt, negative prompt, sampling parameters, seed, size, strength, model
and device, Generate / Cancel and progress. It only edits values and emits requests."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.app.qt_compat import emit
from desktop_app.document.job import MAX_SIDE, SAMPLER_LABELS
from desktop_app.document.settings import MAX_PROMPT_CHARS, MAX_SEED, GenerationSettings
from desktop_app.document.vocabulary import SHOW_AT_MOST, unknown_words

DEVICES = ("auto", "cpu", "cuda", "mps")


class _TextBox(QPlainTextEdit):
    """A prompt box that cuts pasted and dropped text at MAX_PROMPT_CHARS in all."""

    clipped = Signal(int)  # how many characters a paste or drop left out

    def insertFromMimeData(self, source) -> None:  # noqa: N802 (Qt's name)
        if source is not None and source.hasText():
            kept = len(self.toPlainText()) - len(self.textCursor().selectedText())
            room, text = max(0, MAX_PROMPT_CHARS - kept), source.text()
            if len(text) > room:
                self.insertPlainText(text[:room])
                emit(self.clipped, len(text) - room)
                return
        super().insertFromMimeData(source)


def _text_box(placeholder: str, lines: int) -> QPlainTextEdit:
    box = _TextBox()
    box.setPlaceholderText(placeholder)
    box.setTabChangesFocus(True)
    box.setFixedHeight(box.fontMetrics().lineSpacing() * lines + 14)
    return box


class GenerationPanel(QWidget):
    generate_clicked = Signal()
    cancel_clicked = Signal()
    size_edited = Signal(int, int)
    model_requested = Signal(object)  # path str, or None for the built-in model
    device_changed = Signal(str)
    prompt_changed = Signal(str)
    place_requested = Signal()  # the placement hint's link: regions from the prompt
    notice = Signal(str)  # a one-line message for the status bar

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._base = GenerationSettings()
        self._model_cfg = self._base.cfg_scale  # the loaded model's default guidance scale
        self._last_seed: int | None = None
        self.prompt = _text_box("Describe the picture… (Ctrl+Enter generates)", 4)
        self.negative = _text_box("Negative prompt: what to avoid", 1)
        self.prompt.textChanged.connect(self._on_prompt_changed)
        for box in (self.prompt, self.negative):
            box.clipped.connect(self._on_clipped)
        self._prompt_box = QVBoxLayout()
        self._prompt_box.addWidget(QLabel("Prompt"))
        self._prompt_box.addWidget(self.prompt)
        # Words the loaded model never saw in training (when its folder lists its vocabulary).
        self.vocabulary_hint = QLabel()
        self.vocabulary_hint.setWordWrap(True)
        self.vocabulary_hint.setStyleSheet("color: #d9534f")
        self.vocabulary_hint.setVisible(False)
        self._vocabulary: frozenset[str] | None = None
        self._prompt_box.addWidget(self.vocabulary_hint)
        # When the prompt says where things go and the canvas has no regions yet.
        self.placement_hint = QLabel()
        self.placement_hint.setWordWrap(True)
        self.placement_hint.setVisible(False)
        self.placement_hint.linkActivated.connect(lambda _link: emit(self.place_requested))
        self._prompt_box.addWidget(self.placement_hint)
        self._extras_at = self._prompt_box.count()  # the attention strip goes here
        self._prompt_box.addWidget(self.negative)
        layout = QVBoxLayout(self)
        layout.addLayout(self._prompt_box)
        layout.addWidget(self._build_params())
        layout.addWidget(self._build_model())
        # Generate / Cancel / progress stay in view: the window places run_bar under the tabs.
        self.run_bar = QWidget()
        self.run_bar.setLayout(self._build_run())
        layout.addStretch(1)

    # -- construction ------------------------------------------------------------------------
    def _build_params(self) -> QGroupBox:
        box = QGroupBox("Parameters")
        form = QFormLayout(box)
        # The ranges the command line takes, so every job it wrote restores as it was made.
        self.steps = QSpinBox(minimum=1, maximum=1000, value=20)
        self.cfg = QDoubleSpinBox(minimum=0.0, maximum=100.0, singleStep=0.5, value=7.5)
        self.sampler = QComboBox()
        for key, label in SAMPLER_LABELS.items():
            self.sampler.addItem(label, key)
        self.seed_mode = QComboBox()
        self.seed_mode.addItem("Random", "random")
        self.seed_mode.addItem("Fixed", "fixed")
        # A QSpinBox stops at 2**31 - 1; a double holds every seed up to MAX_SEED exactly.
        self.seed = QDoubleSpinBox(minimum=0, maximum=MAX_SEED, decimals=0)
        self.seed.setEnabled(False)
        self.seed_mode.currentIndexChanged.connect(self._on_seed_mode)
        self.reuse_seed = QToolButton(text="Last", toolTip="Reuse the last job's seed")
        self.reuse_seed.setEnabled(False)
        self.reuse_seed.clicked.connect(self._on_reuse_seed)
        seed_row = QHBoxLayout()
        for w, stretch in ((self.seed_mode, 0), (self.seed, 1), (self.reuse_seed, 0)):
            seed_row.addWidget(w, stretch)
        self.width_box = QSpinBox(minimum=8, maximum=MAX_SIDE, singleStep=8, value=512)
        self.height_box = QSpinBox(minimum=8, maximum=MAX_SIDE, singleStep=8, value=512)
        for box_ in (self.width_box, self.height_box):
            box_.setKeyboardTracking(False)
            box_.valueChanged.connect(self._on_size_edited)
        size_row = QHBoxLayout()
        size_row.addWidget(self.width_box, 1)
        size_row.addWidget(QLabel("×"))
        size_row.addWidget(self.height_box, 1)
        self.strength = QDoubleSpinBox(minimum=0.01, maximum=1.0, singleStep=0.05, value=0.75)
        self.mask_grow = QSpinBox(minimum=-512, maximum=512, suffix=" px")
        self.mask_grow.setToolTip("Grow (or shrink, negative) the inpaint mask before the job")
        self.mask_feather = QDoubleSpinBox(minimum=0.0, maximum=512.0, singleStep=1.0,
                                           suffix=" px")
        self.mask_feather.setToolTip("Soft edge blended around the inpainted area (hides seams)")
        edge_row = QHBoxLayout()
        edge_row.addWidget(QLabel("grow"))
        edge_row.addWidget(self.mask_grow, 1)
        edge_row.addWidget(QLabel("feather"))
        edge_row.addWidget(self.mask_feather, 1)
        # A1111's "inpaint area: only masked": small edits get the model's full resolution.
        self.only_masked = QCheckBox("Only masked")
        self.only_masked.setToolTip(
            "Inpaint a crop around the mask, scaled up to the model's size, and paste it back: "
            "more detail for a small area, but the model sees only the crop, so the prompt "
            "should describe what goes there")
        self.inpaint_padding = QSpinBox(minimum=0, maximum=MAX_SIDE, suffix=" px", value=32)
        self.inpaint_padding.setToolTip("Context kept around the mask in the crop")
        self.only_masked.toggled.connect(self._sync_inpaint_area)
        area_row = QHBoxLayout()
        area_row.addWidget(self.only_masked)
        area_row.addWidget(QLabel("padding"))
        area_row.addWidget(self.inpaint_padding, 1)
        self.pww_outside = QDoubleSpinBox(minimum=0.0, maximum=10.0, singleStep=0.25, value=1.0)
        self.pww_outside.setToolTip(
            "Paint-with-words: how hard each region's words are pushed away from the rest of the "
            "image, as a share of the region's strength (0 = only pulled into the region)")
        self.pww_local = QDoubleSpinBox(minimum=0.0, maximum=1000.0, singleStep=0.5, value=6.0)
        self.pww_local.setSpecialValueText("off")
        self.pww_local.setPrefix("σ < ")
        self.pww_local.setToolTip(
            "Paint-with-words: once the noise level falls below this, each region also reads "
            "the prompt without the other regions' words, so every object is drawn from its own "
            "words (0 = off)")
        self.kind_label = QLabel()
        self.kind_label.setWordWrap(True)
        self.kind_label.setStyleSheet("color: palette(mid); font-style: italic")
        form.addRow("Steps", self.steps)
        form.addRow("CFG scale", self.cfg)
        form.addRow("Sampler", self.sampler)
        form.addRow("Seed", seed_row)
        form.addRow("Size", size_row)
        form.addRow("Strength", self.strength)
        form.addRow("Mask edge", edge_row)
        form.addRow("Inpaint area", area_row)
        form.addRow("Keep words in regions", self.pww_outside)
        form.addRow("Region prompts", self.pww_local)
        form.addRow("Job", self.kind_label)
        return box

    def _build_model(self) -> QGroupBox:
        box = QGroupBox("Model")
        form = QFormLayout(box)
        self.model_label = QLabel("Not loaded")
        self.model_label.setWordWrap(True)
        self.model_button = QPushButton("Open model…")
        menu = QMenu(self.model_button)
        menu.addAction("Built-in model", self._on_builtin)
        menu.addAction("Diffusers folder…", self._on_open_folder)
        menu.addAction("Checkpoint (.safetensors)…", self._on_open_file)
        self.model_button.setMenu(menu)
        self.device = QComboBox()
        for d in DEVICES:
            self.device.addItem(d, d)
        self.device.currentIndexChanged.connect(self._on_device)
        form.addRow(self.model_label)
        form.addRow(self.model_button)
        form.addRow("Device", self.device)
        return box

    def _build_run(self) -> QVBoxLayout:
        col = QVBoxLayout()
        row = QHBoxLayout()
        self.generate_button = QPushButton("Generate")
        self.generate_button.setToolTip("Generate (Ctrl+Enter)")
        self.generate_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Cancel (Esc)")
        self.cancel_button.setEnabled(False)
        self.generate_button.clicked.connect(self.generate_clicked)
        self.cancel_button.clicked.connect(self.cancel_clicked)
        row.addWidget(self.generate_button, 2)
        row.addWidget(self.cancel_button, 1)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("Idle")
        col.addLayout(row)
        col.addWidget(self.progress)
        return col

    def show_placement_hint(self, places: int) -> None:
        """Offer to turn the prompt's `places` position phrases into regions (0 hides it)."""
        self.placement_hint.setVisible(places > 0)
        if places:
            self.placement_hint.setText(
                f"The prompt says where {places} things go: <a href=\"place\">place them as "
                "regions</a> (Ctrl+Shift+R), so each is drawn from its own words, where it goes.")

    def add_below_prompt(self, widget: QWidget) -> None:
        self._prompt_box.insertWidget(self._extras_at, widget)
        self._extras_at += 1

    # -- values --------------------------------------------------------------------------------
    def settings(self) -> GenerationSettings:
        return self._base.replace(
            prompt=self.prompt.toPlainText().strip(),
            negative_prompt=self.negative.toPlainText().strip(),
            steps=self.steps.value(), cfg_scale=self.cfg.value(),
            sampler=self.sampler.currentData(), seed_mode=self.seed_mode.currentData(),
            seed=int(self.seed.value()), strength=self.strength.value(),
            mask_grow=self.mask_grow.value(), mask_feather=self.mask_feather.value(),
            inpaint_only_masked=self.only_masked.isChecked(),
            inpaint_padding=self.inpaint_padding.value(),
            pww_outside=self.pww_outside.value(), pww_local_sigma=self.pww_local.value())

    def set_settings(self, s: GenerationSettings) -> None:
        self._base = s
        self.prompt.setPlainText(s.prompt[:MAX_PROMPT_CHARS])  # Restore says when it cuts
        self.negative.setPlainText(s.negative_prompt[:MAX_PROMPT_CHARS])
        i = self.sampler.findData(s.sampler)
        self.sampler.setCurrentIndex(max(0, i))
        self.seed_mode.setCurrentIndex(max(0, self.seed_mode.findData(s.seed_mode)))
        # Clamped to each box's range: a value from a damaged settings file or PNG (steps 10**12)
        # is an OverflowError in setValue.
        for box, value in ((self.steps, s.steps), (self.cfg, s.cfg_scale), (self.seed, s.seed),
                           (self.strength, s.strength), (self.mask_grow, s.mask_grow),
                           (self.mask_feather, s.mask_feather), (self.pww_outside, s.pww_outside),
                           (self.pww_local, s.pww_local_sigma),
                           (self.inpaint_padding, s.inpaint_padding)):
            box.setValue(min(box.maximum(), max(box.minimum(), value)))
        self.only_masked.setChecked(s.inpaint_only_masked)

    def prompt_text(self) -> str:
        return self.prompt.toPlainText()

    def selected_prompt_text(self) -> str:
        """The selection with its line breaks (Qt gives U+2029) and runs of spaces as one space:
        a region's words are one line."""
        return " ".join(self.prompt.textCursor().selectedText().split())

    def set_last_seed(self, seed: int) -> None:
        self._last_seed = seed
        self.reuse_seed.setEnabled(True)
        self.reuse_seed.setToolTip(f"Reuse the last job's seed ({seed})")

    def set_canvas_info(self, width: int, height: int, kind: str, size_editable: bool) -> None:
        for box, v in ((self.width_box, width), (self.height_box, height)):
            box.blockSignals(True)
            box.setValue(v)
            box.setEnabled(size_editable)
            box.setToolTip("" if size_editable else "The image sets the size (File ▸ New for "
                                                     "another size)")
            box.blockSignals(False)
        self.kind_label.setText(kind)
        self.strength.setEnabled(not kind.startswith("Text"))
        self.mask_grow.setEnabled(kind.startswith("Inpaint"))
        self.mask_feather.setEnabled(kind.startswith("Inpaint"))
        self.only_masked.setEnabled(kind.startswith("Inpaint"))
        self._sync_inpaint_area()

    def _sync_inpaint_area(self) -> None:
        self.inpaint_padding.setEnabled(self.only_masked.isEnabled()
                                        and self.only_masked.isChecked())

    def set_model_status(self, text: str) -> None:
        self.model_label.setText(text)

    def adopt_model_defaults(self, info: object) -> None:
        """The CFG box follows the loaded model's recommended scale (4 for the built-in model, 7.5
        for Stable Diffusion) as long as it still shows the previous model's default; a value the
        person chose stays. The prompt box marks words outside the model's vocabulary, if it lists
        one."""
        self._vocabulary = getattr(info, "vocabulary", None)
        self._show_unknown_words()
        cfg_scale = getattr(info, "cfg_scale", None)
        new = float(cfg_scale()) if callable(cfg_scale) else self._base.cfg_scale
        if abs(self.cfg.value() - self._model_cfg) < 1e-6:
            self.cfg.setValue(new)
        self._model_cfg = new

    def set_device(self, device: str) -> None:
        self.device.blockSignals(True)
        self.device.setCurrentIndex(max(0, self.device.findData(device)))
        self.device.blockSignals(False)

    def set_running(self, running: bool) -> None:
        self.generate_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.model_button.setEnabled(not running)
        self.device.setEnabled(not running)
        if running:
            self.progress.setRange(0, 0)  # busy until the first step arrives
            self.progress.setFormat("Starting…")
        else:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("Idle")

    def set_progress(self, step: int, total: int, rate: float) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(step)
        speed = f"{rate:.2f} it/s" if rate >= 1 or rate == 0 else f"{1 / rate:.1f} s/it"
        self.progress.setFormat(f"Step {step}/{total} · {speed}")

    # -- private slots ---------------------------------------------------------------------------
    def _on_seed_mode(self) -> None:
        self.seed.setEnabled(self.seed_mode.currentData() == "fixed")

    def _on_reuse_seed(self) -> None:
        if self._last_seed is not None:
            self.seed_mode.setCurrentIndex(self.seed_mode.findData("fixed"))
            self.seed.setValue(self._last_seed)

    def _on_size_edited(self) -> None:
        emit(self.size_edited, self.width_box.value(), self.height_box.value())

    def _on_clipped(self, lost: int) -> None:
        emit(self.notice, f"Pasted text cut at {MAX_PROMPT_CHARS:,} characters ({lost:,} left "
                          "out); the model reads only the first 75 tokens of a prompt")

    def _on_prompt_changed(self) -> None:
        self._show_unknown_words()
        emit(self.prompt_changed, self.prompt.toPlainText())

    def _show_unknown_words(self) -> None:
        words = unknown_words(self.prompt.toPlainText(), self._vocabulary) if self._vocabulary else []
        if not words:
            self.vocabulary_hint.setVisible(False)
            return
        shown = ", ".join(words[:SHOW_AT_MOST]) + (" …" if len(words) > SHOW_AT_MOST else "")
        self.vocabulary_hint.setText(f"Not in this model's vocabulary (it will likely ignore "
                                     f"them): {shown}")
        self.vocabulary_hint.setVisible(True)

    def _on_builtin(self) -> None:
        emit(self.model_requested, None)

    def _on_open_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a diffusers model folder")
        if path:
            emit(self.model_requested, path)

    def _on_open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a checkpoint", "",
                                              "Checkpoints (*.safetensors *.ckpt)")
        if path:
            emit(self.model_requested, path)

    def _on_device(self) -> None:
        emit(self.device_changed, self.device.currentData())
