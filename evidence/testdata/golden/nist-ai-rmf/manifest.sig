aigw-assessor-package/1
503b8f61-1b7d-50d9-8ca3-aa720cf93bd5
xdtmVJCs/YrZOO3L1/D3f8z8sb6XUUfqSZnZ9wkOMTI=

— aigw-test wbeI6l31yK32xQYnT6Wj+DU+7l7O/dZnj+qC7keI4A99cFuc9A7zP2rdPxRrI60ftQTh+FX7M+fry3NO7TmLYw7raQQ=
