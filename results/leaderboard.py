"""docs/leaderboard.md, its figures and the README's headline table, made from the leaderboard
stores kept in this folder (one per board: ``leaderboard-<board>.db``).

    python results/leaderboard.py snapshot mnist-mlp /work/runs/lb-mnist/mlflow.db  # keep a live store
    python results/leaderboard.py restore mnist-mlp ~/runs/lb-mnist    # a working copy, to continue it
    python results/leaderboard.py docs            # rewrite the page, the figures and the README table
    python results/leaderboard.py docs --check    # exit 1 if any of them differs from the stores

``leaderboard.yaml`` names the boards (sweep, file, the accuracy a row's CPU-seconds are counted
to), each rule's family and the published figures quoted beside the rows. A row is a case of the
board's search sweep: its chosen configuration and its finals (5 fresh seeds). While a board runs,
its unfinished rows say how far their search and finals are.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import yaml
from leaderboard_rows import Board, board_rows
from leaderboard_text import FIGURES, board_figure, board_table, headline_table, provenance_table
from stores import StoreError, restore_kept, snapshot, store_commands
from stores import replace_block as replace_stores_block

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PAGE = ROOT / "docs" / "leaderboard.md"
README = ROOT / "README.md"
START, END = "<!-- leaderboard: {} -->", "<!-- /leaderboard -->"


def store_of(board: str) -> Path:
    return HERE / f"leaderboard-{board}.db"


def load_boards() -> tuple[dict[str, Board], dict[str, str]]:
    config = yaml.safe_load((HERE / "leaderboard.yaml").read_text(encoding="utf-8"))
    boards = {name: Board(name=name, **entry) for name, entry in config["boards"].items()}
    return boards, config["families"]


def read_board(board: Board, families: dict[str, str]):
    """The board's rows from a temporary copy of its store (the kept store is never written to);
    None when the store is not kept yet."""
    store = store_of(board.name)
    if not store.exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "mlflow.db"
        shutil.copyfile(store, copy)
        return board_rows(f"sqlite:///{copy}", board, families)


def replace_block(text: str, name: str, content: str, where: Path) -> str:
    return replace_stores_block(text, START.format(name), END, content, str(where))


def update(check: bool, page: Path = PAGE, readme: Path = README) -> int:
    boards, families = load_boards()
    texts = {page: page.read_text(encoding="utf-8"), readme: readme.read_text(encoding="utf-8")}
    new = dict(texts)
    figures: dict[Path, str] = {}
    for board in boards.values():
        rows = read_board(board, families)
        table = board_table(board, rows)
        new[page] = replace_block(new[page], board.name, table, page)
        new[page] = replace_block(new[page], f"{board.name} provenance", provenance_table(rows), page)
        if rows:
            figures[FIGURES / f"{board.name}.svg"] = board_figure(board, rows, families)
        if board.headline:
            new[readme] = replace_block(new[readme], "headline", headline_table(board, rows), readme)
        print(f"{board.name}: " + ("no store kept yet" if rows is None else f"{len(rows)} rows"))
    stale = [path for path, text in new.items() if text != texts[path]]
    stale += [path for path, svg in figures.items() if not path.exists() or path.read_text() != svg]
    if check:
        for path in stale:
            print(f"{path} is out of date with the stores in {HERE}: run python results/leaderboard.py docs")
        return 1 if stale else 0
    for path, text in new.items():
        path.write_text(text, encoding="utf-8")
    FIGURES.mkdir(parents=True, exist_ok=True)
    for path, svg in figures.items():
        path.write_text(svg, encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser, commands = store_commands(
        __doc__,
        ("board", "the board's name in leaderboard.yaml (mnist-mlp, ...)"),
        "keep a consistent copy of a board's live store",
        "copy a board's kept store to FOLDER/mlflow.db to continue it",
    )
    docs = commands.add_parser("docs", help="rewrite docs/leaderboard.md, its figures and the README table")
    docs.add_argument("--check", action="store_true", help="only say whether they match the stores")
    docs.add_argument("--page", type=Path, default=PAGE, help="[default: %(default)s]")
    docs.add_argument("--readme", type=Path, default=README, help="[default: %(default)s]")
    args = parser.parse_args(argv)
    try:
        boards, _ = load_boards()
        if args.command in ("snapshot", "restore") and args.board not in boards:
            raise StoreError(f"no board {args.board!r} in leaderboard.yaml: {', '.join(boards)}")
        if args.command == "snapshot":
            kept = snapshot(boards[args.board].sweep, args.live, HERE)
            print(kept.replace(store_of(args.board)))
        elif args.command == "restore":
            print(restore_kept(store_of(args.board), args.folder, boards[args.board].file))
        else:
            return update(args.check, args.page, args.readme)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
