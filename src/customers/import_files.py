"""Reading an uploaded customer list: CSV (UTF-8, or GB18030 as Chinese Excel saves it) or XLSX.

Only the shape of the file is checked here (a header row with a phone column); whether each row
makes sense is the service's business. Row numbers are the ones a spreadsheet shows: the header
is row 1, so the first customer is row 2."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException

from depotline.errors import InvalidInput

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000

#: Column -> the headings accepted for it (compared lower-case, spaces and hyphens as "_").
COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("name", "customer", "姓名", "客户", "客戶", "名称", "名稱"),
    "phone": ("phone", "phones", "mobile", "number", "电话", "電話", "手机", "手機"),
    "tier": ("tier", "level", "等级", "等級"),
    "tags": ("tags", "tag", "标签", "標籤"),
    "notes": ("notes", "note", "remarks", "备注", "備註"),
    "language": ("language", "lang", "语言", "語言"),
    "label": ("label", "address_label"),
    "line1": ("line1", "address", "address1", "address_line1", "street", "地址"),
    "line2": ("line2", "address2", "address_line2"),
    "district": ("district", "区", "區"),
    "city": ("city", "城市"),
    "postal_code": ("postal_code", "postcode", "zip", "zip_code", "邮编", "郵編"),
    "country": ("country", "country_code", "国家", "國家"),
    "lat": ("lat", "latitude"),
    "lon": ("lon", "lng", "longitude"),
}
_HEADINGS = {heading: column for column, headings in COLUMNS.items() for heading in headings}

Row = tuple[int, dict[str, str]]


@dataclass(frozen=True)
class Table:
    columns: list[str]  # the recognised columns, in file order
    rows: list[Row]


def read_table(file_name: str, content: bytes) -> Table:
    """Every non-empty row of the file, keyed by column. InvalidInput(field="file") if the file
    cannot be read, has no phone column or is too big."""
    if not content:
        raise InvalidInput("The file is empty", field="file")
    if len(content) > MAX_FILE_BYTES:
        raise InvalidInput("The file is larger than 20 MB: split it", field="file")
    if zipfile.is_zipfile(io.BytesIO(content)):
        lines = _xlsx_lines(content)
    elif file_name.lower().endswith((".xlsx", ".xlsm")):
        raise InvalidInput("Not an Excel (XLSX) file", field="file")
    else:
        lines = _csv_lines(content)
    return _table(lines)


def _table(lines: Iterator[tuple[int, list[str]]]) -> Table:
    header = next(lines, None)
    if header is None:
        raise InvalidInput("The file is empty", field="file")
    positions: dict[int, str] = {}
    for position, heading in enumerate(header[1]):
        column = _HEADINGS.get(heading.strip().lower().replace(" ", "_").replace("-", "_"))
        if column is not None and column not in positions.values():
            positions[position] = column
    if "phone" not in positions.values():
        raise InvalidInput("The first row must name the columns, one of them 'phone'", field="file")
    rows: list[Row] = []
    for number, cells in lines:
        if not any(cell.strip() for cell in cells):
            continue
        if len(rows) >= MAX_ROWS:
            raise InvalidInput("More than 100,000 rows: split the file", field="file")
        row = {column: "" for column in positions.values()}
        for position, column in positions.items():
            if position < len(cells):
                row[column] = cells[position].strip()
        rows.append((number, row))
    return Table(columns=list(positions.values()), rows=rows)


def _csv_lines(content: bytes) -> Iterator[tuple[int, list[str]]]:
    text = _decode(content)
    first_line = text.split("\n", 1)[0]
    # The delimiter from the header alone: phone cells may hold "a; b" in a comma-separated file.
    delimiter = max((",", ";", "\t"), key=first_line.count)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        return iter(list(enumerate(reader, start=1)))
    except csv.Error as exc:
        raise InvalidInput(f"Not a readable CSV file: {exc}", field="file") from None


def _decode(content: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput("Save the CSV file as UTF-8", field="file")


def _xlsx_lines(content: bytes) -> Iterator[tuple[int, list[str]]]:
    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError):
        raise InvalidInput("Not an Excel (XLSX) file", field="file") from None
    try:
        sheet = workbook.worksheets[0]
        lines = [
            (number, [_cell(value) for value in values])
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1)
        ]
    finally:
        workbook.close()
    return iter(lines)


def _cell(value: Any) -> str:
    """A spreadsheet cell as text. Numbers typed into Excel (phone numbers, postal codes) come
    back as int or float: 13800138000.0 must read 13800138000."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)
