"""Bulk import from CSV and XLSX: good rows become (or update) profiles, every bad row is
reported with its row number, column and reason, and progress shows while the worker works."""

from __future__ import annotations

import csv
import io
import re

from litestar import Litestar
from litestar.testing import AsyncTestClient
from openpyxl import Workbook

from customers import service
from customers.models import ImportStatus
from tests.customers.conftest import Desk
from tests.telephony_gateway.conftest import CALLER, Drain
from tests.tenant.conftest import csrf_of, sign_in

TOO_LONG = "名" * 201
BAD_ROWS_CSV = f"""name,phone,tier,tags,notes,language,line1,district,city,postal_code
周杰,13811112222,vip,wholesale,,zh_Hans,中山五路 1 号,越秀区,广州,510030
No Number,12345,,,,,,,,
Mary Lee,,,,,,,,,
Bad Tier,13811113333,gold,,,,,,,
Klingon,13811114444,,,,tlh,,,,
,+8613800138000,,tea,Prefers SMS,,,,,
周杰,"+86 138 1111 2222; 13811115555",,returns,,,,,,
{TOO_LONG},13811116666,,,,,,,,
Two Owners,13800138000;13912345678,,,,,,,,
""".encode()


def visible(page: str) -> str:
    """The page's text as a reader sees it: no tags, single spaces."""
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


async def upload(
    client: AsyncTestClient[Litestar], name: str, content: bytes, region: str = "CN"
) -> str:
    """Upload through the import page; returns the progress page's path."""
    csrf = await csrf_of(client, "/customers/import")
    response = await client.post(
        "/customers/import",
        data={"_csrf": csrf, "default_region": region},
        files={"file": (name, content, "application/octet-stream")},
        follow_redirects=False,
    )
    assert response.status_code in (302, 303), response.text
    location = response.headers["location"]
    assert re.fullmatch(r"/customers/imports/[0-9a-f-]{36}", location)
    return str(location)


async def test_csv_import_with_bad_rows(
    client: AsyncTestClient[Litestar], seeded: Desk, drain: Drain
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    progress_page = await upload(client, "customers.csv", BAD_ROWS_CSV)
    waiting = await client.get(progress_page)
    assert '<progress id="import-progress" max="9" value="0">' in waiting.text
    assert "0 of 9 rows" in visible(waiting.text) and "Queued" in visible(waiting.text)

    await drain()
    import_id = progress_page.rsplit("/", 1)[1]
    status = (await client.get(f"/api/v1/customers/imports/{import_id}")).json()
    assert (status["status"], status["processed"], status["percent"]) == ("done", 9, 100)
    assert (status["accepted"], status["created"], status["rejected"]) == (3, 1, 6)
    assert [(r["row"], r["field"], r["reason"]) for r in status["report"]] == [
        (3, "phone", service.PHONE_INVALID),
        (4, "phone", service.PHONE_MISSING),
        (5, "tier", service.TIER_UNKNOWN),
        (6, "language", service.LANGUAGE_UNKNOWN),
        (9, "name", service.NAME_TOO_LONG),
        (10, "phone", service.PHONE_OWNERS),
    ]

    # The page lists the rejected rows; the download has them as CSV.
    done = await client.get(progress_page)
    assert "<progress" in done.text and 'value="9"' in done.text
    assert "Unknown tier: use standard or vip" in done.text and ">gold<" in done.text
    report = await client.get(f"/api/v1/customers/imports/{import_id}/report.csv")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(report.text.lstrip("\ufeff"))))
    assert lines[0] == ["row", "field", "value", "reason"]
    assert lines[1] == ["3", "phone", "12345", service.PHONE_INVALID]
    assert len(lines) == 7
    chinese = await client.get(
        f"/api/v1/customers/imports/{import_id}/report.csv", params={"lang": "zh-Hans"}
    )
    assert "不是有效的电话号码" in chinese.text

    # Good rows are customers; a number seen before (in the tenant, or earlier in the file)
    # updated that customer instead of making a second one.
    zhou = await seeded.profile_of("+8613811115555")
    assert zhou.customer.name == "周杰" and zhou.customer.tier == "vip"
    assert zhou.phones == ["+8613811112222", "+8613811115555"]
    assert zhou.customer.tags == ["wholesale", "returns"]
    assert [(a.line1, a.city, a.postal_code) for a in zhou.addresses] == [
        ("中山五路 1 号", "广州", "510030")
    ]
    wang = await seeded.profile_of(CALLER)
    assert wang.customer.name == "王芳"  # an empty cell leaves the name alone
    assert wang.customer.tags == ["frequent shipper", "e-commerce", "tea"]
    assert wang.customer.notes.endswith("\nPrefers SMS")
    for rejected in ("+8613811113333", "+8613811114444", "+8613811116666"):
        assert await seeded.owner_of(rejected) is None
    assert [h.customer.name for h in await seeded.run(service.search, "周杰")] == ["周杰"]


async def test_xlsx_import_reads_numbers_typed_into_excel(
    client: AsyncTestClient[Litestar], swift: Desk, drain: Drain
) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["姓名", "电话", "地址", "城市", "邮编", "标签"])
    sheet.append(["黄明", 13822223333, "深南大道 6001 号", "深圳", 518000, "月结, 大客户"])
    sheet.append([None, None, None, None, None, None])  # an empty row is skipped, not rejected
    sheet.append(["Anna Smith", "+852 6123 4567", "1 Harbour Road", "Hong Kong", None, None])
    sheet.append(["坏号码", 1234, None, None, None, None])
    buffer = io.BytesIO()
    book.save(buffer)

    await sign_in(client, "admin@swiftfreight.test")
    headers = {"x-csrf-token": await csrf_of(client, "/customers/import")}
    response = await client.post(
        "/api/v1/customers/imports",
        files={"file": ("客户.xlsx", buffer.getvalue(), "application/octet-stream")},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert (response.json()["status"], response.json()["total"]) == ("queued", 3)
    await drain()
    status = (await client.get(f"/api/v1/customers/imports/{response.json()['id']}")).json()
    assert (status["accepted"], status["rejected"]) == (2, 1)
    assert [(r["row"], r["field"], r["value"]) for r in status["report"]] == [(5, "phone", "1234")]

    huang = await swift.profile_of("+8613822223333")
    assert huang.customer.name == "黄明" and huang.customer.tags == ["月结", "大客户"]
    assert (huang.addresses[0].city, huang.addresses[0].postal_code) == ("深圳", "518000")
    assert (await swift.profile_of("+85261234567")).customer.name == "Anna Smith"


async def test_a_file_that_is_no_customer_list_is_refused_naming_the_file(
    client: AsyncTestClient[Litestar], swift: Desk
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    headers = {"x-csrf-token": await csrf_of(client, "/customers/import")}
    for name, content in (
        ("notes.csv", b"name,email\nWang,wang@example.test\n"),
        ("empty.csv", b""),
        ("fake.xlsx", b"this is not a spreadsheet"),
    ):
        response = await client.post(
            "/api/v1/customers/imports", files={"file": (name, content)}, headers=headers
        )
        assert response.status_code == 400, (name, response.text)
        assert response.json()["errors"][0]["field"] == "file"
    missing = await client.post("/api/v1/customers/imports", data={"x": "y"}, headers=headers)
    assert missing.status_code == 400 and missing.json()["errors"][0]["field"] == "file"
    page = await client.post(
        "/customers/import",
        data={"_csrf": headers["x-csrf-token"]},
        files={"file": ("notes.csv", b"name\nWang\n")},
    )
    assert page.status_code == 400
    assert "The first row must name the columns, one of them" in page.text


async def test_large_imports_progress_batch_by_batch(swift: Desk) -> None:
    rows = "\n".join(f"Customer {n},+86138000{n:05d}" for n in range(5))
    run = await swift.run(
        service.start_import,
        None,
        file_name="five.csv",
        content=f"name,phone\n{rows}\n".encode(),
    )
    assert (run.status, run.total, run.processed) == (ImportStatus.QUEUED, 5, 0)
    table = await swift.run(service.import_rows, run.id)
    assert table is not None
    seen = []
    while await swift.run(service.import_batch, run.id, table, 2):
        seen.append((await swift.run(service.get_import, run.id)).processed)
    assert seen == [2, 4]
    finished = await swift.run(service.get_import, run.id)
    assert (finished.status, finished.processed, finished.created) == (ImportStatus.DONE, 5, 5)
    # Delivered again (a worker died after the last batch): nothing happens twice.
    assert not await swift.run(service.import_batch, run.id, table, 2)
    assert await swift.run(service.import_rows, run.id) is None
    assert (await swift.run(service.get_import, run.id)).created == 5
