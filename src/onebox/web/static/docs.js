// @ts-check
// Starts Swagger UI on /docs (web/docs.py). A file rather than an inline script, so the
// page's Content-Security-Policy allows scripts from Onebox only.

const root = /** @type {HTMLElement} */ (document.getElementById("swagger-ui"));
const SwaggerUIBundle = /** @type {any} */ (window).SwaggerUIBundle;

SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  // The validator badge would send the spec's address to a third-party service.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});

export {};
