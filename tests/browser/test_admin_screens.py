"""The admin screens in a real browser (issue 3's "Done when"): an admin creates a user
in a department, gives a new role a data scope in the matrix, and the user signs in and
sees exactly what that scope allows."""
from __future__ import annotations

import secrets

import pytest

from .harness import BROWSER_MISSING, sign_in, unique

if BROWSER_MISSING:
    pytest.skip(BROWSER_MISSING, allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.browser


def test_admin_creates_a_user_and_a_role_and_the_user_sees_their_departments_customers(crm, page_as):
    tag = secrets.token_hex(3)
    ours = crm.create("rep_east", "customer", {"name": unique("East Tea")})
    theirs = crm.create("rep_north", "customer", {"name": unique("North Tea")})
    page = page_as("admin")

    # A role, and its matrix: customers readable within the department.
    page.goto("/admin/roles")
    page.fill("#r-name", f"east_viewer_{tag}")
    page.fill("#r-label_en", "East viewer")
    page.fill("#r-label_zh", "东区查看")
    page.click("#mc-new-role button")
    expect(page.locator("h1")).to_contain_text(f"east_viewer_{tag}")
    page.select_option("select[name='perm.customer.read']", "department")
    page.click("#mc-save-role")
    expect(page.locator(".alert-success")).to_contain_text("saved and published")
    expect(page.locator("select[name='perm.customer.read']")).to_have_value("department")

    # The user, in the East team, holding that role.
    page.goto("/admin/users/new")
    page.fill("#u-username", f"eve_{tag}")
    page.fill("#u-password", "eve-pass-123")
    page.fill("#u-display_name", "Eve East")
    page.select_option("#u-department_id", label="\u00a0\u00a0East team")
    page.check(f"#role-east_viewer_{tag}")
    page.click("#mc-save-user")
    expect(page.locator(".alert-success")).to_contain_text("Eve East")
    expect(page.locator("#u-department_id option:checked")).to_contain_text("East team")

    # The user signs in and sees the East team's customer, not the North team's.
    eve = page_as()
    sign_in(eve, f"eve_{tag}", "eve-pass-123")
    eve.goto("/r/customer?page_size=100")
    expect(eve.locator("main table")).to_contain_text(ours["name"])
    expect(eve.locator("main table")).not_to_contain_text(theirs["name"])
    expect(eve.locator(".mc-sidebar [data-page='metacrm_admin_users.users']")).to_have_count(0)
    assert eve.goto("/admin/users").status == 403
