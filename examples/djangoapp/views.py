"""JSON views: a GET that describes the request and a POST that echoes what it received."""

import hashlib
import json

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST


@require_GET
def index(request):
    return JsonResponse(
        {
            "framework": "django",
            "method": request.method,
            "path": request.path,
            "query": request.GET.dict(),
            "host": request.get_host(),
            "secure": request.is_secure(),
        }
    )


@csrf_exempt
@require_POST
def echo(request):
    body = request.body
    data = {
        "method": request.method,
        "content_type": request.content_type,
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "form": request.POST.dict() if request.content_type == "application/x-www-form-urlencoded" else None,
    }
    if request.content_type == "application/json":
        data["json"] = json.loads(body or b"null")
    return JsonResponse(data, status=201)
