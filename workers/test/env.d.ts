declare module "cloudflare:workers" {
  interface GlobalProps {
    mainModule: typeof import("../src/index");
  }
}
