"""A failed submit keeps every file and text (uploads come back in their text boxes), the page opens at an error
summary whose messages link to their inputs, and a cut-off JSON dump gets a whole sentence saying so."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.analyses.helpers import ENVOY_REDIRECT, POD_IP, REDIRECT_RULES

pytestmark = pytest.mark.django_db


def test_uploads_come_back_as_text_and_the_summary_links_to_the_field(client: Client) -> None:
    cut = ENVOY_REDIRECT[: len(ENVOY_REDIRECT) // 2]
    response = client.post(
        "/new/",
        {
            "pod_ip": POD_IP,
            "iptables_file": SimpleUploadedFile("rules.txt", REDIRECT_RULES.encode()),
            "envoy_config_dump_file": SimpleUploadedFile("dump.json", cut.encode()),
            "ip_rule": "0:\tfrom all lookup local\n",
        },
    )
    assert response.status_code == 400
    page = response.content.decode()
    # the form posts to #errors: the browser opens the answer at the summary
    assert 'action="/new/#errors"' in page and 'id="errors"' in page
    summary = page[page.index('id="errors"') : page.index("</div>", page.index('id="errors"'))]
    assert 'href="#field-envoy_config_dump"' in summary
    assert "cut off while it was copied" in summary
    # the uploaded rules are back in the iptables text box, the pasted ip rule too
    iptables_box = re.search(r'<textarea name="iptables"[^>]*>(.*?)</textarea>', page, re.S)
    assert iptables_box is not None and "ISTIO_INBOUND" in iptables_box.group(1)
    assert "from all lookup local" in page
    assert "the files you uploaded are now in their text boxes" in page


def test_new_page_says_a_new_analysis_is_private_and_has_labelled_text_boxes(client: Client) -> None:
    page = client.get("/new/").content.decode()
    assert "Anyone with the link can read" not in page
    assert "A new analysis is private" in page
    for name in ("iptables", "ip_rule", "envoy_config_dump"):
        assert f'<label for="id_{name}"' in page
    assert "`" not in page.split('<main id="main"')[1]  # no Markdown backticks in the help texts
